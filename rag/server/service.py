"""What the HTTP layer serves from: the embedder, the LLM and the live index, built once when
the app starts, plus the generation pool. Every transport asks `prepare` and `generate` here, so
plain JSON, SSE, NDJSON, OpenAI chunks and the WebSocket share one pipeline.

The index is re-read when another process (`rag ingest`) swaps in a new version, and after an
upload; a reader holds the version it started with until it is done (versions are immutable).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from rag.answer import Answerer, Done, Prepared, Token
from rag.catalog import FileEntry
from rag.conversation import ConversationStore, Message
from rag.corpus import IngestReport
from rag.embeddings import Embedder, make_embedder
from rag.errors import (
    BadUpload,
    CollectionNotFound,
    IndexNotFound,
    NotReady,
    QuestionTooLong,
    RagError,
    UploadConflict,
)
from rag.filters import Filter
from rag.ingestion import ingest
from rag.labels import UNLABELLED, Labels
from rag.llm import LLM, Supervised, make_llm
from rag.metrics import Metrics
from rag.retrieval import Mode, Retriever
from rag.server.answer_log import AnswerBook
from rag.server.pool import GenerationPool, Ticket
from rag.server.uploads import Uploaded, earlier_uploads, save
from rag.settings import Settings
from rag.stores import make_store

log = logging.getLogger("rag.server")


def retrieval_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


UNREACHABLE = "(unreachable)"


class Service:
    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        llm: LLM | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = make_store(settings)
        self.embedder = embedder
        self.llm = llm
        self.metrics = metrics or Metrics(enabled=False)
        self.pool = GenerationPool(
            settings.max_generations,
            settings.max_queue,
            settings.generation_timeout_s,
            watcher=self.metrics,
        )
        self.answers = AnswerBook(
            settings.resume_max_answers, settings.resume_ttl_s, self.store.shared_answers()
        )
        self.llm_error: str | None = None
        self._owns_llm = False
        self.index_error: str | None = "not loaded yet"
        self._answerer: Answerer | None = None
        self._retriever: Retriever | None = None  # without the LLM: the documents, while it is down
        self._version: str | None = None  # the version being served
        self._tried: str | None = "-"  # the last version a load was attempted for
        self._reload_lock = threading.Lock()
        self.ingest_lock = threading.Lock()  # one upload ingest at a time in this process
        # Retrieval (query embedding, FAISS, BM25) runs here, not in the event loop's default
        # pool of 40 threads: 64 simultaneous torch calls on 2 cores only thrash each other.
        self.retrieval_executor = ThreadPoolExecutor(
            max_workers=retrieval_threads(), thread_name_prefix="retrieval"
        )

    def start(self) -> None:
        """Load the models and the index (blocking: call it from a thread). Failures are kept
        as readiness reasons, so the server still starts and says what is wrong."""
        if self.embedder is None:
            self.embedder = make_embedder(self.settings)
        built_llm = self._owns_llm = self.llm is None
        if self.llm is None:
            try:
                self.llm = make_llm(self.settings)
            except RagError as err:  # the app logs it, once, as the reason it is not ready
                self.llm_error = str(err)
        self.reload()
        if self._answerer is not None:
            # a model in this process gets its prompt head cached; a server is warmed by its own
            self.warm_up(self._answerer, with_llm=built_llm and self.settings.llm == "llamacpp")

    def stop(self) -> None:
        """The server is stopping: no more generations or retrievals, connections closed."""
        self.pool.shutdown()
        self.answers.close()
        self.retrieval_executor.shutdown(wait=False, cancel_futures=True)
        self.store.close()
        if self._owns_llm and isinstance(self.llm, Supervised):
            self.llm.close()  # its engine process ends

    def warm_up(self, answerer: Answerer, with_llm: bool) -> None:
        """Load the encoder now and, for an LLM built here, fill its cache of the fixed prompt
        head (one token is generated, then cancelled): the first question is then as fast as
        the next ones. An LLM passed in by the caller is left alone."""
        prepared = answerer.prepare("warm up")
        if not with_llm:
            return
        cancel = threading.Event()
        try:
            for event in answerer.generate(prepared, cancel):
                if isinstance(event, Token):
                    cancel.set()
        except RagError as err:
            log.warning("warm-up generation failed: %s", err)

    def reload(self) -> None:
        """Open the index again if its version is not the one in use."""
        with self._reload_lock:
            assert self.embedder is not None
            try:
                version = self.store.version()
                self._tried = version
                if version is not None and version == self._version and self.index_error is None:
                    return
                index = self.store.open()
                retriever = Retriever(index, self.embedder)
            except RagError as err:
                self.index_error = str(err)
                if not isinstance(err, IndexNotFound):
                    log.error("index not usable: %s", err)
                return
            self._retriever = retriever
            if self.llm is not None:
                self._answerer = Answerer(retriever, self.llm, self.settings)
            self._version, self.index_error = version, None
            manifest = index.manifest
            self.metrics.index(manifest.n_chunks, len(manifest.files), version)
            log.info("serving index %s (version %s)", self.store.where, version)

    @property
    def not_ready_reason(self) -> str | None:
        if self.index_error is not None:
            return f"index not ready: {self.index_error}"
        if self.llm_error is not None or self.llm is None:
            return f"LLM not ready: {self.llm_error or 'not loaded yet'}"
        if isinstance(self.llm, Supervised) and (problem := self.llm.problem()) is not None:
            return f"LLM not ready: {problem}"
        return None

    def answerer(self) -> Answerer:
        if self._answerer is None or self.not_ready_reason is not None:
            raise NotReady(self.not_ready_reason or "not ready")
        return self._answerer

    def refresh(self) -> None:
        """Open the index again if another process changed its version (or removed it), or
        if the store answers again after an outage; a version that failed to load is not
        tried again until it changes. Blocking."""
        try:
            version = self.store.version()
        except RagError as err:
            self.index_error, self._tried = str(err), UNREACHABLE
            return
        if version != self._tried:
            self.reload()

    async def admit(
        self,
        question: str,
        top_k: int | None,
        retrieval: Mode | None,
        history: Sequence[Message] = (),
        where: Filter | None = None,
    ) -> tuple[Ticket, Prepared]:
        """A place in the pool, then retrieval in a worker thread; errors leave no place taken."""
        limit = self.settings.max_question_chars
        if len(question) > limit:
            raise QuestionTooLong(
                f"the question is {len(question)} characters; the limit is {limit}"
            )
        ticket = self.pool.admit()
        try:
            loop = asyncio.get_running_loop()
            prepared = await loop.run_in_executor(
                self.retrieval_executor, self.prepare, question, top_k, retrieval, history, where
            )
        except BaseException:
            ticket.release()
            raise
        self.metrics.retrieval(prepared.retrieval_ms / 1000)
        return ticket, prepared

    def prepare(
        self,
        question: str,
        top_k: int | None,
        retrieval: Mode | None,
        history: Sequence[Message] = (),
        where: Filter | None = None,
    ) -> Prepared:
        """Retrieval and prompt (blocking: call it from a thread)."""
        self.refresh()
        return self.answerer().prepare(
            question, top_k=top_k, retrieval=retrieval, history=history, where=where
        )

    def generate(self, prepared: Prepared, cancel: threading.Event) -> Iterator[Token | Done]:
        return self.answerer().generate(prepared, cancel)

    @functools.cached_property
    def conversations(self) -> ConversationStore:
        """The conversations kept beside the index (opened at first use)."""
        return self.store.conversations()

    def documents(self) -> dict[str, FileEntry]:
        """The index's documents (whether or not the LLM is ready)."""
        if self._retriever is None or self.index_error is not None:
            raise NotReady(f"index not ready: {self.index_error or 'not loaded yet'}")
        return dict(self._retriever.index.manifest.files)

    def is_upload(self, entry: FileEntry) -> bool:
        return Path(entry.root).resolve() == self.settings.upload_dir.resolve()

    async def upload(
        self, files: Sequence[UploadFile], replace: bool, labels: Labels = UNLABELLED
    ) -> Uploaded:
        """Write `files` into the upload folder and ingest it; a file ingestion refuses is
        removed again. `UploadConflict` for an earlier upload's name unless `replace`,
        `BadUpload` when no file could be ingested."""
        folder = self.settings.upload_dir
        replaced = earlier_uploads(files, folder, replace)
        folder.mkdir(parents=True, exist_ok=True)
        written = [await save(f, folder, self.settings.max_upload_bytes) for f in files]
        mine = dataclasses.replace(labels, only=frozenset(str(p.resolve()) for p in written))
        report = await run_in_threadpool(self.ingest_uploads, mine)
        ours = {path.resolve() for path in written}
        refused = {Path(s.path).name: s.reason for s in report.skipped if Path(s.path) in ours}
        for path in written:  # a file ingestion could not read must not linger in the folder
            if path.name in refused:
                path.unlink(missing_ok=True)
        if len(refused) == len(written):
            raise BadUpload(
                "no file could be ingested: " + "; ".join(f"{n}: {r}" for n, r in refused.items())
            )
        prefix = folder.resolve().name
        return Uploaded(
            ids=[f"{prefix}/{p.name}" for p in written if p.name not in refused],
            replaced={f"{prefix}/{name}" for name in replaced},
            refused=refused,
            version=report.version,
        )

    def remove_upload(self, document_id: str, entry: FileEntry) -> IngestReport:
        """Delete an uploaded document's file and drop it from the index (blocking);
        `UploadConflict` for a document ingested from elsewhere."""
        if not self.is_upload(entry):
            raise UploadConflict(
                f"{document_id} was not uploaded: documents ingested from folders are managed "
                "with `rag ingest`"
            )
        Path(entry.path).unlink(missing_ok=True)
        return self.ingest_uploads()

    def remove_collection(self, name: str) -> tuple[list[str], IngestReport]:
        """Drop every document of collection `name` from the index, and the files of those
        uploaded (blocking); `CollectionNotFound` when it has none."""
        documents = {s: e for s, e in self.documents().items() if e.collection == name}
        if not documents:
            raise CollectionNotFound(f"no collection {name!r} in the index")
        for entry in documents.values():
            if self.is_upload(entry):
                Path(entry.path).unlink(missing_ok=True)
        return sorted(documents), self.ingest_uploads(remove=sorted(documents))

    def ingest_uploads(
        self, labels: Labels = UNLABELLED, remove: Sequence[str] = ()
    ) -> IngestReport:
        """Bring the index up to date with the upload folder (files gone from it are dropped
        from the index; `labels` for the files it names), drop the documents in `remove`, then
        serve the new version. Blocking."""
        assert self.embedder is not None
        upload_dir = self.settings.upload_dir
        with self.ingest_lock:
            report = ingest(
                [Path(upload_dir)],
                self.settings,
                self.embedder,
                store=self.store,
                labels=labels,
                remove=remove,
            )
            self.metrics.ingested(report, "upload")
            for note in report.announcements():  # an upload changed more than its documents
                log.warning("upload: %s", note)
            self.reload()
        return report


async def get_service(request: Request) -> Service:
    # async: FastAPI would run a plain function in its thread pool, a thread hop per request
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]
