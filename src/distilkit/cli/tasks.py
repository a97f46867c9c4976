"""Commands for downstream tasks: finetune, task-distill, evaluate."""
