"""Every task distilkit knows, as one record each: what a model must do for it, how it is scored, where its
labels come from and how its benchmark files are laid out. A command resolves its --task here once
(`task_spec`) and hands the record to the readers, features, heads, prediction, the logit cache and export.

The bottom of the tasks layer: it imports nothing of distilkit but errors.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from distilkit.errors import ConfigError

# What a model does — one vocabulary for tasks and for model folders (ship/). A task is one of the last four; a
# model folder without a task head is an "embedding" model. The head is the transformers class suffix
# (AutoModel{head}); a regression model carries a sequence-classification head with one output.
HEADS: Mapping[str, str] = MappingProxyType(
    {
        "embedding": "",
        "classification": "ForSequenceClassification",
        "regression": "ForSequenceClassification",
        "token-classification": "ForTokenClassification",
        "qa": "ForQuestionAnswering",
    }
)
KINDS = tuple(HEADS)

# The one split-alias table: every other spelling of a split → distilkit's name for it.
SPLIT_ALIASES: Mapping[str, str] = MappingProxyType({"validation": "dev", "valid": "dev", "val": "dev"})

# Tag schemes of token classification (#18): the span schemes decode tags into spans scored by span F1, "plain"
# tags (parts of speech, ...) are scored per word. Other spellings → distilkit's name.
TAG_SCHEMES = ("iob1", "iob2", "bioes", "plain")
SCHEME_ALIASES: Mapping[str, str] = MappingProxyType({"bio": "iob2", "iob": "iob2", "iobes": "bioes", "none": "plain"})
_SPAN_METRICS, _WORD_METRICS = ("precision", "recall", "f1"), ("accuracy", "macro_f1")


def canonical_scheme(name: str) -> str:
    """distilkit's name of a tag scheme ("BIO" → "iob2", "IOBES" → "bioes"); ConfigError listing the valid ones."""
    key = name.strip().lower().replace("-", "")
    key = SCHEME_ALIASES.get(key, key)
    if key not in TAG_SCHEMES:
        raise ConfigError(f"unknown tag scheme {name!r} — choose one of: {', '.join(TAG_SCHEMES)} (BIO = iob2)")
    return key


def canonical_split(split: str) -> str:
    """distilkit's name of a split: "validation" → "dev", "validation_mismatched" → "dev_mismatched"."""
    key = split.strip().lower().replace("-", "_")
    head, _, tail = key.partition("_")
    return "_".join(filter(None, [SPLIT_ALIASES.get(head, head), tail]))


@dataclass(frozen=True)
class TaskSpec:
    """One task. kind: a KINDS entry ("embedding": a sentence-embedding evaluation); metrics: what it reports, in
    order; main: which of them average into its headline score. label_source: "benchmark" (labels fixed below),
    "data" (the training split's, or a trained model's id2label: NER, your own classes) or "none" (regression
    scores, QA spans). benchmark: the reader of its --data files ("glue", "squad", "conll"); None for the problem
    types of your own data and the sentence-embedding evaluations.

    Benchmark files: folder (GLUE's folder name, "SST-2"), files (split → the file names it may have, the
    first found is read), text_columns and label_column (the file's header names), hub_columns (the text
    columns of its `datasets` hub config), headerless_columns/headerless_splits (CoLA train/dev have no header),
    unlabelled_splits (may lack the label column: GLUE test files), split_aliases (this task's own, after
    SPLIT_ALIASES: MNLI's "dev" is "dev_matched", MNLI-mm's "dev_mismatched").

    Token classification: tag_column (the CoNLL column holding the tags: 1 POS, 2 chunk, -1 the last; the
    hub column is label_column), tag_scheme (a TAG_SCHEMES entry; None: detected from the training tags —
    readers/schemes.py). The scheme decides the metrics (`with_scheme`)."""

    name: str
    kind: str
    metrics: tuple[str, ...]
    main: tuple[str, ...]
    label_source: str = "none"
    labels: tuple[str, ...] = ()
    benchmark: str | None = None
    title: str = ""  # how messages name it: "SST-2", "SQuAD", "CoNLL-2003"
    folder: str = ""
    files: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    text_columns: tuple[str, ...] = ()
    label_column: str = ""
    hub_columns: tuple[str, ...] = ()
    headerless_columns: tuple[str, ...] = ()
    headerless_splits: frozenset[str] = frozenset()
    unlabelled_splits: frozenset[str] = frozenset()
    split_aliases: Mapping[str, str] = field(default_factory=dict, hash=False)
    default_max_len: int = 128  # tokens per feature: BERT's GLUE setting; 384 for SQuAD (Devlin et al. 2019, §4)
    tag_column: int = -1
    tag_scheme: str | None = None

    @property
    def head(self) -> str:
        """The transformers head class suffix this task trains ("ForSequenceClassification", ...)."""
        return HEADS[self.kind]

    @property
    def model_kind(self) -> str:
        """The kind of a model folder fine-tuned on this task (ship/): regression models are sequence classifiers."""
        return "classification" if self.kind == "regression" else self.kind

    @property
    def num_labels(self) -> int:
        """Outputs of the head: 1 score (regression), 2 (QA start/end), else one per class."""
        return {"regression": 1, "qa": 2}.get(self.kind, len(self.labels))

    @property
    def labels_from_data(self) -> bool:
        """The labels come from the training data (or a trained model), not from the benchmark."""
        return self.label_source == "data"

    @property
    def own_data_only(self) -> bool:
        """A problem type that names no benchmark: it reads --train/--dev/--test files or --dataset, not --data."""
        return self.benchmark is None and self.kind != "embedding"

    @property
    def trains_head(self) -> bool:
        """Fine-tuned with a task head (finetune, task-distill, evaluate); not a sentence-embedding evaluation."""
        return self.kind != "embedding"

    @property
    def scale(self) -> float:
        """Points per unit of its scores: SQuAD/QA scores are percentages already, every other is a fraction."""
        return 1.0 if self.kind == "qa" else 100.0

    def with_labels(self, labels: tuple[str, ...] | list[str] | None) -> TaskSpec:
        """This task with the label set of its data (NER tags, own classes); the record itself for other tasks."""
        return replace(self, labels=tuple(labels or ())) if self.labels_from_data else self

    def with_scheme(self, scheme: str | None) -> TaskSpec:
        """This token task with its tag scheme and the metrics that go with it: span precision/recall/F1 (main F1)
        for a span scheme, word accuracy and macro-F1 (main accuracy) for plain tags. Other tasks: unchanged."""
        if self.kind != "token-classification" or scheme is None:
            return self
        scheme = canonical_scheme(scheme)
        metrics, main = (_WORD_METRICS, ("accuracy",)) if scheme == "plain" else (_SPAN_METRICS, ("f1",))
        return replace(self, tag_scheme=scheme, metrics=metrics, main=main)

    def main_score(self, metrics: Mapping[str, float]) -> float:
        """The headline score: the mean of the `main` entries of `metrics`, on their scale (the GLUE convention,
        Wang et al. 2019 §3: MRPC/QQP average F1 and accuracy, STS-B Pearson and Spearman; SQuAD → F1)."""
        return sum(float(metrics[name]) for name in self.main) / len(self.main)

    def file_split(self, split: str) -> str:
        """The `files` key of `split` (aliases resolved); ConfigError naming the splits the task has."""
        key = canonical_split(split)
        key = self.split_aliases.get(key, key)
        if key not in self.files:
            raise ConfigError(f"{self.title} has no split {split!r} — choose one of: {', '.join(self.files)}")
        return key


def _glue(name: str, folder: str, columns: tuple[str, ...], label_column: str, labels: tuple[str, ...],
          hub_columns: tuple[str, ...] | None = None, **extra) -> TaskSpec:  # fmt: skip
    """A GLUE task: GLUE's TSV layout, scored as the GLUE paper does (`GLUE_METRICS`)."""
    metrics = GLUE_METRICS.get(name, ("accuracy",))
    files = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv", **extra.pop("files", {})}
    return TaskSpec(
        name, "classification" if labels else "regression", metrics, metrics,
        label_source="benchmark" if labels else "none", labels=labels, benchmark="glue", title=folder,
        folder=folder, files=MappingProxyType({split: (file,) for split, file in files.items()}),
        text_columns=columns, label_column=label_column, hub_columns=hub_columns or columns,
        unlabelled_splits=extra.pop("unlabelled_splits", frozenset({"test"})), **extra,
    )  # fmt: skip


# Main score = mean of them all (Wang et al. 2019, §3 / leaderboard); every other GLUE task reports accuracy.
GLUE_METRICS = {"cola": ("matthews",), "mrpc": ("f1", "accuracy"), "qqp": ("f1", "accuracy"),
                "stsb": ("pearson", "spearman")}  # fmt: skip
_NLI = ("entailment", "not_entailment")
_MNLI_FILES = {"dev_matched": "dev_matched.tsv", "dev_mismatched": "dev_mismatched.tsv",
               "test_matched": "test_matched.tsv", "test_mismatched": "test_mismatched.tsv"}  # fmt: skip
_MNLI = {"columns": ("sentence1", "sentence2"), "label_column": "gold_label",
         "labels": ("contradiction", "entailment", "neutral"), "hub_columns": ("premise", "hypothesis"),
         "unlabelled_splits": frozenset({"test_matched", "test_mismatched"})}  # fmt: skip
_QA_METRICS = ("exact_match", "f1")
_SUITE_METRICS = ("sts", "pair-mrpc", "pair-qnli", "classify-sst2")


def _mnli(mismatched: bool) -> TaskSpec:
    """MNLI reads dev_matched/test_matched for "dev"/"test"; spelled mnli-mm, the mismatched ones."""
    which = "mismatched" if mismatched else "matched"
    spec = _glue("mnli", "MNLI", files=_MNLI_FILES, **_MNLI)
    files = {split: names for split, names in spec.files.items() if split not in ("dev", "test")}
    return replace(spec, files=MappingProxyType(files),
                   split_aliases=MappingProxyType({"dev": f"dev_{which}", "test": f"test_{which}"}))  # fmt: skip


def _conll(name: str, title: str, column: int, hub_column: str, scheme: str) -> TaskSpec:
    """A tag column of the CoNLL-2003 files (word POS chunk NER), scored as its scheme is (`with_scheme`)."""
    files = {"train": ("train.txt", "eng.train"), "dev": ("valid.txt", "dev.txt", "eng.testa"),
             "test": ("test.txt", "eng.testb")}  # fmt: skip
    return TaskSpec(name, "token-classification", _SPAN_METRICS, ("f1",), label_source="data", benchmark="conll",
                    title=title, files=MappingProxyType(files), label_column=hub_column,
                    tag_column=column).with_scheme(scheme)  # fmt: skip


# Columns and label orders are those of the GLUE release and of the transformers GLUE processors
# (e.g. MNLI ids 0/1/2 = contradiction/entailment/neutral), so checkpoints fine-tuned elsewhere line up.
TASKS: Mapping[str, TaskSpec] = MappingProxyType(
    {
        "cola": _glue("cola", "CoLA", ("sentence",), "label", ("0", "1"),
                      headerless_columns=("source", "label", "original_label", "sentence"),
                      headerless_splits=frozenset({"train", "dev"})),
        "sst2": _glue("sst2", "SST-2", ("sentence",), "label", ("0", "1")),
        # The labelled original MSR test file has the train header, so it reads like train.tsv.
        "mrpc": _glue("mrpc", "MRPC", ("#1 String", "#2 String"), "Quality", ("0", "1"),
                      hub_columns=("sentence1", "sentence2"), files={"test_with_labels": "msr_paraphrase_test.txt"}),
        "stsb": _glue("stsb", "STS-B", ("sentence1", "sentence2"), "score", (),
                      files={"test_with_scores": "test_with_scores.tsv"}),
        "qqp": _glue("qqp", "QQP", ("question1", "question2"), "is_duplicate", ("0", "1")),
        "mnli": _mnli(mismatched=False),
        "mnli-mm": _mnli(mismatched=True),
        "qnli": _glue("qnli", "QNLI", ("question", "sentence"), "label", _NLI),
        "rte": _glue("rte", "RTE", ("sentence1", "sentence2"), "label", _NLI),
        "wnli": _glue("wnli", "WNLI", ("sentence1", "sentence2"), "label", ("0", "1")),
        # SQuAD v1.1 without train-v1.1.json: an article split of the dev file (readers/squad.py).
        "squad": TaskSpec("squad", "qa", _QA_METRICS, ("f1",), benchmark="squad", title="SQuAD",
                          files=MappingProxyType({"train": ("train-v1.1.json",), "dev": ("dev-v1.1.json",)}),
                          default_max_len=384),
        # CoNLL-2003's columns: word, POS, chunk, NER; the chunk and NER tags are IOB1, read as IOB2 (to_iob2).
        "conll2003": _conll("conll2003", "CoNLL-2003", -1, "ner_tags", "iob2"),  # the last: word NER files too
        "pos": _conll("pos", "CoNLL-2003 POS", 1, "pos_tags", "plain"),
        "chunk": _conll("chunk", "CoNLL-2003 chunking", 2, "chunk_tags", "iob2"),
        # The problem types of your own data (--train/--dev files or --dataset), scored like their benchmark:
        # classification reports macro-F1 too, as class counts of own data are rarely balanced.
        "classification": TaskSpec("classification", "classification", ("accuracy", "macro_f1"), ("accuracy",),
                                   label_source="data"),
        "regression": TaskSpec("regression", "regression", ("pearson", "spearman", "mse"), ("pearson", "spearman")),
        "token-classification": TaskSpec("token-classification", "token-classification", _SPAN_METRICS, ("f1",),
                                         label_source="data"),
        "qa": TaskSpec("qa", "qa", _QA_METRICS, ("f1",), default_max_len=384),
        # Sentence-embedding evaluations (`evaluate --task sts | embedding-suite`, embeddings.py and
        # embedding_suite.py): zero-shot, no head is trained, scores ×100. STS-B pairs are read as task stsb.
        "sts": TaskSpec("sts", "embedding", ("spearman", "pearson"), ("spearman",), title="STS-B (zero-shot)"),
        "embedding-suite": TaskSpec("embedding-suite", "embedding", _SUITE_METRICS, _SUITE_METRICS,
                                    title="embedding suite"),
    }
)  # fmt: skip

# Spellings accepted besides the keys of TASKS, after `squash_task_name` (lower-case, alphanumerics only).
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "sst": "sst2", "mnlim": "mnli", "mnlimatched": "mnli", "mnlimm": "mnli-mm",
        "mnlimismatched": "mnli-mm", "squad1": "squad", "squad11": "squad", "squadv1": "squad", "squadv11": "squad",
        "conll": "conll2003", "conll03": "conll2003", "ner": "conll2003", "conll2003pos": "pos",
        "postagging": "pos", "partofspeech": "pos", "conll2003chunk": "chunk", "chunking": "chunk",
        "textclassification": "classification",
        "sequenceclassification": "classification", "tokenclassification": "token-classification",
        "token": "token-classification", "questionanswering": "qa", "extractiveqa": "qa",
    }
)  # fmt: skip
_SQUASHED = MappingProxyType({name.replace("-", ""): name for name in TASKS})


def squash_task_name(name: str) -> str:
    """Lower-case `name` and drop everything but letters and digits: "SST-2" → "sst2", "MNLI-mm" → "mnlimm"."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def task_spec(name: str) -> TaskSpec:
    """The record of any accepted spelling of a task ("SST-2", "sts-b", "squad1.1", "ner", "MNLI-mm", ...).
    ConfigError naming the valid tasks when `name` is unknown."""
    key = squash_task_name(name)
    key = ALIASES.get(key) or _SQUASHED.get(key)
    if key is None:
        raise ConfigError(f"unknown task {name!r} — choose one of: {', '.join(TASKS)}")
    return TASKS[key]


def glue_tasks() -> list[TaskSpec]:
    """The GLUE tasks, one record each (MNLI once)."""
    return [spec for key, spec in TASKS.items() if spec.benchmark == "glue" and key == spec.name]


def head_task(task: str, tag_scheme: str | None = None) -> tuple[TaskSpec | None, list[str]]:
    """The record of a task a head is trained or scored on (with --tag-scheme), or None and the problems: an unknown
    task or scheme, or an embedding task (scored by `distilkit evaluate --task sts` / `embedding-suite`)."""
    try:
        spec = task_spec(task).with_scheme(tag_scheme)
    except ConfigError as error:
        return None, [str(error)]
    if not spec.trains_head:
        return None, [f"--task {task} evaluates sentence embeddings: distilkit evaluate --task {spec.name}"]
    return spec, []
