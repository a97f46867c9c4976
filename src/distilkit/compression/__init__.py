"""`distilkit compress`: the fastest or best student for a latency, speed-up or retention target, found under a
time budget from the pieces of the pipeline (init-student, task-distill, bench, export).

config.py holds CompressConfig (the flags), cost.py the latency model fitted from timed random-weight models,
search.py the candidate shapes and successive halving, run.py the command, report.py the HTML page. (The package
is not named `compress`: a submodule named like the public function `distilkit.compress` would replace it.)
"""
