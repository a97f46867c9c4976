"""Run finetune or task-distill in this process and SIGKILL it after step N (used by test_task_resume.py).

usage: python task_kill_driver.py COMMAND CONFIG_JSON STEP — COMMAND finetune | task-distill; STEP 0: no kill.
"""

import json
import os
import signal
import sys

from distilkit.train.finetune import FinetuneConfig, finetune
from distilkit.train.task_distill import TaskDistillConfig, task_distill

COMMANDS = {"finetune": (finetune, FinetuneConfig), "task-distill": (task_distill, TaskDistillConfig)}


def main() -> None:
    run, config_class = COMMANDS[sys.argv[1]]
    config, kill_after = config_class(**json.loads(sys.argv[2])), int(sys.argv[3])

    def callback(event: dict) -> None:
        if event["event"] == "step" and event["step"] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    run(config, callback=callback)


if __name__ == "__main__":
    main()
