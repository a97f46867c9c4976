"""The benchmarks' training corpora hold no text of the splits they report (#15): on small slices of the real
data here (the benchmarks check the whole corpus as they build it), with a plain substring check that shares no
code with the hashed index. Skips when ../shared/data is absent."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import unicodedata
from pathlib import Path

import pytest

from distilkit.tasks.registry import task_spec

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("DISTILKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
pytestmark = pytest.mark.skipif(not (DATA / "glue" / "STS-B").is_dir(), reason=f"no shared data under {DATA}")


def load_script(name: str):
    """A benchmark script as a module under its own name ("tasks" is also this suite's tests/tasks package)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def benchmarks():
    sys.path.insert(0, str(REPO / "benchmarks"))  # the scripts import their common.py
    yield load_script("tasks"), load_script("embedding_students")
    sys.path.remove(str(REPO / "benchmarks"))


def plain(text: str) -> str:
    return " " + " ".join(re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold())) + " "


def reported_texts(tasks_module) -> list[str]:
    """The dev/test texts of the GLUE tasks the benchmarks report, read by the GLUE reader."""
    texts = []
    for task, folder in tasks_module.GLUE_DIRS.items():
        for split in ("dev", "test_with_scores" if task == "stsb" else "test"):
            if (DATA / "glue" / folder / f"{split}.tsv").is_file() or split == "test_with_scores":
                for example in tasks_module.read_glue(task_spec(task), DATA / "glue" / folder, split):
                    texts += [t for t in (example.text, example.text_pair) if t and len(t.split()) >= 3]
    return texts


def leaks(lines: list[str], texts: list[str]) -> list[tuple[str, str]]:
    corpus = [plain(line) for line in lines]
    needles = {plain(text) for text in texts}
    return [(needle, line) for needle in needles for line in corpus if needle in line]


def test_the_tasks_corpus_holds_no_reported_text(tmp_path, benchmarks):
    tasks_module, _ = benchmarks
    raw = tasks_module.corpus_lines(DATA, limit=400)
    texts = reported_texts(tasks_module)
    assert leaks(raw, texts), "the slice should hold evaluation text before decontamination (else the test is void)"
    record = tasks_module.clean_corpus(DATA, tmp_path / "corpus.txt", limit=400)
    clean = (tmp_path / "corpus.txt").read_text(encoding="utf-8").splitlines()
    assert record["dropped"]["corpus"] == len(raw) - len(clean) > 0
    assert leaks(clean, texts) == []


def test_the_embedding_corpus_holds_no_reported_text(tmp_path, benchmarks, monkeypatch):
    tasks_module, embedding = benchmarks
    root = tmp_path / "data"  # slices of the real text, the real GLUE folders
    (root / "text" / "wikitext-2-raw").mkdir(parents=True)
    (root / "text" / "public-domain").mkdir()
    wiki = (DATA / "text" / "wikitext-2-raw" / "wiki.train.raw").read_text(encoding="utf-8").splitlines()[:400]
    (root / "text" / "wikitext-2-raw" / "wiki.train.raw").write_text("\n".join(wiki), encoding="utf-8")
    (root / "glue").symlink_to(DATA / "glue")
    original = embedding.read_glue
    monkeypatch.setattr(embedding, "read_glue", lambda *args: original(*args)[:400])  # a slice of each train split
    raw = embedding.sentences(root, "both+glue")
    texts = reported_texts(tasks_module)
    assert leaks(raw, texts), "the slice should hold evaluation text before decontamination (else the test is void)"
    exclusion = embedding.build_exclusion(embedding.evaluation_data(DATA))
    clean = embedding.sentences(root, "both+glue", exclusion)
    assert exclusion.dropped["corpus"] == len(raw) - len(clean) > 0
    assert leaks(clean, texts) == []
