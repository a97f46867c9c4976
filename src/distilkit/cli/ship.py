"""Commands that ship the student: bench, export, serve, report."""
