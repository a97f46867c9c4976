"""The ship stage: measure (bench), package (export, with an ONNX graph and a model card), serve and report.

Nothing here is imported by the stages below it (data, models, train, tasks) except quickstart's report card.
"""
