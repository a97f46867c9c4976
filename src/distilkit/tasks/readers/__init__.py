"""Readers: benchmark files, your own files and `datasets` splits → examples (glue.Example, squad.SquadExample,
ner.NerSentence). The bottom of the tasks layer with registry.py: nothing here tokenises, trains or scores.
"""
