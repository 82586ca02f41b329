"""Sample the feed part of the frozen test set (rule in dev/README.md, evaluation protocol).

The English sentences of every ``shared/corpora/feeds/pool/*.xml`` feed are shuffled per
feed with a fixed seed and every eighth one is taken. Output is a work file for the
labeller, one JSON object per line with the reference fields and the ``text`` to label;
``scripts/build_devset.py``'s reference format is kept (``feed`` is ``pool/<file>``).

    python scripts/sample_testset.py ../shared work.jsonl
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from pipeline.devset import feed_sentences, sentence_sha1

SEED = 20261204
EVERY = 8


def sample(shared: Path) -> list[dict[str, object]]:
    import py3langid

    rows: list[dict[str, object]] = []
    for path in sorted((shared / "corpora" / "feeds" / "pool").glob("*.xml")):
        candidates = []
        for (entry_id, field), sentences in feed_sentences(path.read_bytes()).items():
            for index, text in enumerate(sentences):
                if py3langid.classify(text)[0] == "en":
                    candidates.append((entry_id, field, index, text))
        random.Random(f"{SEED}:{path.name}").shuffle(candidates)
        for entry_id, field, index, text in candidates[::EVERY]:
            rows.append(
                {
                    "feed": f"pool/{path.name}",
                    "entry_id": entry_id,
                    "field": field,
                    "sentence": index,
                    "sha1": sentence_sha1(text),
                    "text": text,
                }
            )
    return rows


if __name__ == "__main__":
    shared_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    lines = [json.dumps(row, ensure_ascii=False) for row in sample(shared_dir)]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} sentences -> {out}")
