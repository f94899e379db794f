"""A document's identity, on both stores: the same file reached by two paths is one document,
two different files are never one, a subfolder is part of the folder already ingested, and a
document whose file is gone can be removed."""

from __future__ import annotations

from pathlib import Path

from rag.embeddings import HashingEmbedder
from rag.settings import Settings
from tests.conftest import top_source, write_corpus
from tests.test_ingestion import into, opened

TWO_READMES = {
    "d1/readme.md": "# One\n\nThe tapir of the first folder eats ferns.",
    "d2/readme.md": "# Two\n\nThe zebra of the second folder eats grass.",
}


def test_two_files_named_alike_given_directly_are_two_documents(
    tmp_path: Path, stored: Settings
) -> None:
    root = write_corpus(tmp_path / "files", TWO_READMES)
    report = into(stored, [root / "d1/readme.md", root / "d2/readme.md"], HashingEmbedder())
    assert report.n_files == 2
    assert len(set(report.added)) == 2
    assert top_source(stored, "tapir ferns") != top_source(stored, "zebra grass")
    files = opened(stored).manifest.files
    assert {Path(e.path) for e in files.values()} == {
        (root / "d1/readme.md").resolve(),
        (root / "d2/readme.md").resolve(),
    }


def test_two_files_named_alike_in_two_runs_are_two_documents(
    tmp_path: Path, stored: Settings
) -> None:
    root = write_corpus(tmp_path / "files", TWO_READMES)
    first = into(stored, [root / "d1/readme.md"], HashingEmbedder())
    second = into(stored, [root / "d2/readme.md"], HashingEmbedder())
    assert first.added == ["readme.md"]
    assert second.added == ["d2/readme.md"] and second.changed == []
    assert second.n_files == 2
    assert top_source(stored, "tapir ferns") == "readme.md"
    assert top_source(stored, "zebra grass") == "d2/readme.md"


def test_a_file_reached_by_another_path_is_the_same_document(
    corpus: Path, stored: Settings
) -> None:
    into(stored, [corpus], HashingEmbedder())
    again = into(stored, [corpus / "nested" / ".." / "football.md"], HashingEmbedder())
    assert again.unchanged == ["docs/football.md"] and not again.added
    assert again.n_files == 3


def test_a_subfolder_of_an_ingested_folder_is_not_ingested_twice(
    corpus: Path, stored: Settings
) -> None:
    into(stored, [corpus], HashingEmbedder())
    sub = into(stored, [corpus / "nested"], HashingEmbedder())
    assert sub.unchanged == ["docs/nested/primes.html"] and not sub.added
    assert sub.n_files == 3 and not sub.wrote
    (corpus / "nested" / "primes.html").unlink()
    pruned = into(stored, [corpus / "nested"], HashingEmbedder())
    assert pruned.removed == ["docs/nested/primes.html"]
    assert sorted(opened(stored).manifest.files) == ["docs/football.md", "docs/oxygen.txt"]


def test_a_folder_of_the_same_name_elsewhere_is_other_documents(
    tmp_path: Path, stored: Settings
) -> None:
    a = write_corpus(tmp_path / "a" / "docs", {"x.md": "# X\n\nThe tapir eats ferns."})
    b = write_corpus(tmp_path / "b" / "docs", {"x.md": "# X\n\nThe zebra eats grass."})
    into(stored, [a], HashingEmbedder())
    report = into(stored, [b], HashingEmbedder())
    assert report.added == ["b/docs/x.md"] and report.changed == [] and report.removed == []
    assert report.n_files == 2


def test_a_deleted_file_given_directly_is_removed(tmp_path: Path, stored: Settings) -> None:
    gone = write_corpus(tmp_path / "gone", {"tapir.md": "# Tapir\n\nA tapir eats ferns."})
    into(stored, [gone / "tapir.md"], HashingEmbedder())
    (gone / "tapir.md").unlink()
    report = into(stored, [gone / "tapir.md"], HashingEmbedder())
    assert report.removed == ["tapir.md"] and report.skipped == []
    assert report.n_files == 0
    assert opened(stored).manifest.files == {}


def test_walking_the_folder_of_a_deleted_direct_file_prunes_it(
    tmp_path: Path, stored: Settings
) -> None:
    gone = write_corpus(tmp_path / "gone", {"tapir.md": "# Tapir\n\nA tapir eats ferns."})
    into(stored, [gone / "tapir.md"], HashingEmbedder())
    (gone / "tapir.md").unlink()
    report = into(stored, [gone], HashingEmbedder())
    assert report.removed == ["tapir.md"]


def test_remove_deletes_documents_by_name_and_says_which_are_unknown(
    corpus: Path, stored: Settings
) -> None:
    into(stored, [corpus], HashingEmbedder())
    report = into(stored, [], HashingEmbedder(), remove=["docs/oxygen.txt", "docs/none.md"])
    assert report.removed == ["docs/oxygen.txt"]
    assert [s.path for s in report.skipped] == ["docs/none.md"]
    assert "not in the index" in report.skipped[0].reason
    assert report.n_files == 2
    assert sorted(opened(stored).manifest.files) == ["docs/football.md", "docs/nested/primes.html"]


def test_a_folder_moved_elsewhere_keeps_its_documents_re_embedding_none(
    tmp_path: Path, stored: Settings
) -> None:
    """The eval's temporary corpus, a folder renamed by its user: the documents are the same
    (same names, same content), so they keep their place in the index and their vectors."""
    first_place = write_corpus(tmp_path / "first/docs", TWO_READMES)
    into(stored, [first_place], HashingEmbedder())
    second_place = tmp_path / "second/docs"
    second_place.parent.mkdir()
    first_place.rename(second_place)
    moved = into(stored, [second_place], HashingEmbedder())
    assert moved.n_embedded == 0 and not moved.added and not moved.removed
    assert sorted(moved.unchanged) == ["docs/d1/readme.md", "docs/d2/readme.md"]
    files = opened(stored).manifest.files
    assert {Path(e.path).parent.parent for e in files.values()} == {second_place.resolve()}
    assert top_source(stored, "tapir ferns") == "docs/d1/readme.md"
    again = into(stored, [second_place], HashingEmbedder())
    assert not again.wrote  # the new places were written: nothing left to do
