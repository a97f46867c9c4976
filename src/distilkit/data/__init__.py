"""Corpus → memory-mapped token arrays → length-grouped, dynamically masked batches."""
