"""Write the sample corpus in data/ from SQuAD articles (CC BY-SA 4.0, see
docs/sample-corpus-LICENSE.txt).

python scripts/make_sample_corpus.py [--dataset ../shared/datasets/squad-dev-a/squad-dev-a.json]
"""

import argparse
from pathlib import Path

from rag.squad import load_articles, write_articles

ROOT = Path(__file__).resolve().parents[1]

SAMPLE = [
    "Super_Bowl_50",
    "Oxygen",
    "Apollo_program",
    "Black_Death",
    "Packet_switching",
    "Prime_number",
    "Geology",
    "Victoria_(Australia)",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", type=Path, default=ROOT.parent / "shared/datasets/squad-dev-a/squad-dev-a.json"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "data")
    args = parser.parse_args()
    chosen = [a for a in load_articles(args.dataset) if a.slug in SAMPLE]
    for path in write_articles(chosen, args.out):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
