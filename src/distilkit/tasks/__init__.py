"""Downstream tasks, layer by layer: registry.py (every task as a record) and readers/ (files → examples) at the
bottom; then features.py and data.py (examples → features → batches), heads.py, predict.py and metrics.py; and the
commands built on them, finetune.py and task_distill.py (with logit_cache.py and augment.py).
"""
