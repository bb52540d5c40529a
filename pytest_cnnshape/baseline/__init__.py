"""Shape baselines: a model's per-layer shapes and parameter counts, committed and gated.

The pieces, one job each (the split syrupy makes between snapshot data,
serializers and reporting):

- ``snapshot``: what a baseline holds, built from ``ShapeTrace.to_dict()``, and so
  exactly what is compared;
- ``serializer``: the versioned, diff-friendly JSON file and its validation;
- ``diff``: how a baseline and the current model differ, renames told apart;
- ``render``: that difference as text (test failure, terminal) and Markdown;
- ``location``: where the files live and what they are called;
- ``check``: the test side: compare, record the use on the model's entry, fail;
- ``gate``: the controller side: write, count, judge unused files, annotate.

Only the controller writes (``gate``); tests, on xdist workers or not, only read.
Nothing here imports torch.
"""
