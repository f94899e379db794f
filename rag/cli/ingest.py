"""`rag ingest PATH...`: files and folders into the index, incrementally; and the summary that
`rag remove` prints too."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rag.cli.status import EXIT_FAILED, EXIT_OK
from rag.corpus import IngestReport
from rag.embeddings import make_embedder
from rag.errors import UsageError
from rag.ingestion import default_progress, ingest
from rag.labels import Labels, parse_tags
from rag.settings import Settings

DESCRIPTION = (
    "Read .txt, .md, .html, .pdf (scanned pages by OCR when Tesseract is installed), .docx, .odt, "
    ".pptx, .xlsx, .csv and .epub files, and text files without an extension (folders "
    "recursively), split them into chunks, embed them and write the index. Only new or changed "
    "files are embedded; files that vanished from a folder walked again are dropped (unless "
    "--no-prune). An existing index keeps its chunk settings and index type unless others are "
    "given. Exit status: 0 all ingested, 1 some files skipped (each with its reason), 2 usage "
    "error."
)


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    machine: argparse.ArgumentParser,
) -> None:
    ing = commands.add_parser(
        "ingest",
        parents=[common, machine],
        help="add files and folders to the index (incremental)",
        description=DESCRIPTION,
    )
    ing.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="file or folder")
    ing.add_argument(
        "--chunk-size",
        dest="chunk_size_tokens",
        type=int,
        default=None,
        metavar="TOKENS",
        help="chunk length in embedding-model tokens (default: the index's own, 200 for a new "
        "index; $RAG_CHUNK_SIZE_TOKENS)",
    )
    ing.add_argument(
        "--chunk-overlap",
        dest="chunk_overlap_tokens",
        type=int,
        default=None,
        metavar="TOKENS",
        help="tokens shared by consecutive chunks (default: the index's own, 32 for a new index; "
        "$RAG_CHUNK_OVERLAP_TOKENS)",
    )
    ing.add_argument(
        "--index-type",
        choices=["flat", "hnsw"],
        default=None,
        help="flat: exact search; hnsw: approximate, for millions of chunks (default: the "
        "index's own, flat for a new index)",
    )
    ing.add_argument(
        "--no-prune",
        dest="prune",
        action="store_false",
        help="keep chunks of files that were removed from a re-ingested folder",
    )
    ing.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    add_label_options(ing)
    ing.add_argument(
        "--metrics-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write this run's metrics (files by result, skipped by reason, chunks, "
        "seconds, end time) in Prometheus' text format, e.g. for node_exporter's textfile "
        "collector: --metrics-file /var/lib/node_exporter/rag_ingest.prom",
    )
    ing.set_defaults(run=run)


def add_label_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--collection",
        default=None,
        metavar="NAME",
        help="put the files found in this collection (default: each keeps its own; new files: "
        "default)",
    )
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="tag the files found (repeat; replaces their tags; default: each keeps its own)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.metrics_file is not None and not args.metrics_file.parent.is_dir():
        raise UsageError(f"--metrics-file: no folder {args.metrics_file.parent}")
    labels = Labels(args.collection, parse_tags(args.tag) if args.tag else None)
    embedder = make_embedder(settings)
    report = ingest(
        args.paths,
        settings,
        embedder,
        prune=args.prune,
        progress=not args.quiet and not args.json and default_progress(),
        labels=labels,
    )
    if args.metrics_file is not None:
        from rag.ingestion_metrics import write_textfile

        try:
            write_textfile(report, args.metrics_file)
        except OSError as err:
            raise UsageError(f"cannot write --metrics-file {args.metrics_file}: {err}") from None
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print_report(report)
    return EXIT_FAILED if report.skipped else EXIT_OK


def print_report(report: IngestReport) -> None:
    for note in report.announcements():
        print(f"note: {note}", file=sys.stderr)
    for item in report.skipped:
        print(f"skipped {item.path}: {item.reason}", file=sys.stderr)
    for item in report.ignored:
        print(f"ignored {item.path}: {item.reason}", file=sys.stderr)
    where = report.index
    if not report.wrote:
        state = "up to date" if report.version else "nothing to index"
        print(
            f"{where}: {state}, {report.n_files} files, {report.n_chunks} chunks "
            f"({report.seconds:.1f} s)"
        )
        return
    print(
        f"{where}: {report.n_files} files, {report.n_chunks} chunks; "
        f"added {len(report.added)}, changed {len(report.changed)}, removed "
        f"{len(report.removed)}, unchanged {len(report.unchanged)}; embedded "
        f"{report.n_embedded} chunks in {report.seconds:.1f} s"
    )
    for source, encoding in report.encodings.items():
        print(f"read {source} as {encoding} (not UTF-8)", file=sys.stderr)
    if report.ocr_pages:
        print(f"read {report.ocr_pages} PDF page(s) without a text layer by OCR")
    if report.skipped:
        print(f"{len(report.skipped)} file(s) skipped, listed above")
