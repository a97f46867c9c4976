"""Run distill in this process and SIGKILL it at a chosen point (used by test_resume.py).

usage: python kill_driver.py CONFIG_JSON POINT, POINT one of
  none | step:N (after step N's update) | after-checkpoint:N | checkpoint-write:N (weights written,
  manifest not yet: a torn checkpoint) | final-export (the final student folder half written)
"""

import json
import os
import signal
import sys

import distilkit.io
import distilkit.train.checkpoint as checkpoint
from distilkit.train.distill import DistillConfig, distill


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    config = DistillConfig(**json.loads(sys.argv[1]))
    kind, _, at = sys.argv[2].partition(":")
    if kind == "checkpoint-write":
        original_manifest = checkpoint.write_manifest

        def manifest_then_die(directory, *args, **kwargs):
            if f"step-{int(at):08d}" in directory.name:
                die()
            return original_manifest(directory, *args, **kwargs)

        checkpoint.write_manifest = manifest_then_die
    if kind == "final-export":
        original_fsync = distilkit.io.fsync_tree

        def fsync_then_die(directory):
            if "student" in directory.name:
                die()
            return original_fsync(directory)

        distilkit.io.fsync_tree = fsync_then_die

    def callback(event: dict) -> None:
        if kind == "step" and event["event"] == "step" and event["step"] == int(at):
            die()
        if kind == "after-checkpoint" and event["event"] == "checkpoint" and event["step"] == int(at):
            die()

    distill(config, callback=callback)


if __name__ == "__main__":
    main()
