"""Downstream tasks: readers, preprocessing and metrics for GLUE, SQuAD v1.1 and CoNLL-2003 NER.

glue.py, squad.py and ner.py each read one benchmark's files and turn them into model features;
metrics.py holds the one metric implementation per task and the table of which score is "the" score.
"""
