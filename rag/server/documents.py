"""`/v1/documents`: upload files (multipart), list and delete them. Uploads go through the same
incremental ingestion as `rag ingest`, on the upload folder, in a worker thread (the event loop
never blocks); the new chunks are searchable when the call returns.

A file name is used only if it is a plain name (no folder part, no `..`, no NUL, not hidden) of
a supported type, so nothing is ever written outside the upload folder. Each file is written
to a hidden temporary name first and renamed into place, so a crash never leaves half a file
where ingestion would read it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from starlette.concurrency import run_in_threadpool

from rag.corpus import FileEntry
from rag.documents import SUPPORTED_SUFFIXES
from rag.errors import BadUpload
from rag.server.service import Service, ServiceDep

router = APIRouter(tags=["documents"])
READ_SIZE = 1 << 20
MAX_NAME_CHARS = 200


def safe_name(name: str | None) -> str:
    """The upload's file name if it is a plain, supported one; else `BadUpload`.

    >>> safe_name("notes.md")
    'notes.md'
    >>> safe_name("../passwd.txt")
    Traceback (most recent call last):
    ...
    rag.errors.BadUpload: file name '../passwd.txt' has a folder part: send a plain name
    """
    if not name or not name.strip():
        raise BadUpload("a file has no name")
    if "\x00" in name:
        raise BadUpload(f"file name {name!r} contains a NUL character")
    if "/" in name or "\\" in name or name in {".", ".."}:
        raise BadUpload(f"file name {name!r} has a folder part: send a plain name")
    if name.startswith("."):
        raise BadUpload(f"file name {name!r} is hidden (starts with a dot)")
    if len(name) > MAX_NAME_CHARS:
        raise BadUpload(f"file name is longer than {MAX_NAME_CHARS} characters")
    if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise BadUpload(f"{name}: unsupported file type (supported: {kinds})")
    return name


def is_upload(entry: FileEntry, service: Service) -> bool:
    return Path(entry.root).resolve() == service.settings.upload_dir.resolve()


def describe(source: str, entry: FileEntry, service: Service) -> dict[str, Any]:
    return {
        "id": source,
        "title": entry.title,
        "size": entry.size,
        "n_chunks": entry.n_chunks,
        "sha256": entry.sha256,
        "uploaded": is_upload(entry, service),
    }


async def save(upload: UploadFile, folder: Path, limit_bytes: int) -> Path:
    """Write the upload under `folder` (temporary name, then rename); `BadUpload` past the limit."""
    name = safe_name(upload.filename)
    target = folder / name
    temporary = folder / f".upload-{os.getpid()}-{id(upload)}-{name}"
    size = 0
    try:
        with temporary.open("wb") as out:
            while block := await upload.read(READ_SIZE):
                size += len(block)
                if size > limit_bytes:
                    raise HTTPException(
                        413, f"{name} is larger than the upload limit of {limit_bytes} bytes"
                    )
                await run_in_threadpool(out.write, block)  # disk writes off the event loop
        await run_in_threadpool(os.replace, temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


@router.post(
    "/v1/documents",
    status_code=201,
    summary="Upload files and ingest them",
    responses={409: {"description": "a file of that name was uploaded before (see replace)"}},
)
async def upload(
    files: Annotated[list[UploadFile], File(description="txt, md, html or pdf files")],
    service: ServiceDep,
    replace: Annotated[
        bool, Form(description="replace earlier uploads of the same names (else 409)")
    ] = False,
) -> dict[str, Any]:
    names = [safe_name(f.filename) for f in files]  # refuse the whole request before writing
    if len(set(names)) != len(names):
        raise BadUpload("two uploaded files have the same name")
    folder = service.settings.upload_dir
    prefix = folder.resolve().name
    # an earlier upload is a regular file (a symlink planted there is replaced, never followed)
    existing = [n for n in names if (folder / n).is_file() and not (folder / n).is_symlink()]
    if existing and not replace:
        raise HTTPException(
            409,
            f"{', '.join(f'{prefix}/{n}' for n in existing)} "
            f"{'was' if len(existing) == 1 else 'were'} uploaded before: send replace=true "
            "(a form field) to replace it, or upload under another name",
        )
    folder.mkdir(parents=True, exist_ok=True)
    written = [await save(f, folder, service.settings.max_upload_bytes) for f in files]
    report = await run_in_threadpool(service.ingest_uploads)
    ours = {path.resolve() for path in written}
    refused = {Path(s.path).name: s.reason for s in report.skipped if Path(s.path) in ours}
    for path in written:  # a file ingestion could not read must not linger in the folder
        if path.name in refused:
            path.unlink(missing_ok=True)
    if len(refused) == len(written):
        raise BadUpload(
            "no file could be ingested: " + "; ".join(f"{n}: {r}" for n, r in refused.items())
        )
    entries = service.documents()
    return {
        "documents": [
            {
                **describe(f"{prefix}/{p.name}", entries[f"{prefix}/{p.name}"], service),
                "replaced": p.name in existing,
            }
            for p in written
            if p.name not in refused
        ],
        "skipped": [{"name": n, "reason": r} for n, r in refused.items()],
        "index_version": report.version,
    }


@router.get("/v1/documents", summary="The documents in the index")
async def list_documents(service: ServiceDep) -> dict[str, Any]:
    entries = await run_in_threadpool(service.documents)
    return {"documents": [describe(s, e, service) for s, e in entries.items()]}


@router.delete("/v1/documents/{document_id:path}", summary="Delete an uploaded document")
async def delete_document(document_id: str, service: ServiceDep) -> dict[str, Any]:
    entry = (await run_in_threadpool(service.documents)).get(document_id)
    if entry is None:
        raise HTTPException(404, f"no document {document_id!r} in the index")
    if not is_upload(entry, service):
        raise HTTPException(
            409,
            f"{document_id} was not uploaded: documents ingested from folders are managed "
            "with `rag ingest`",
        )
    Path(entry.path).unlink(missing_ok=True)
    report = await run_in_threadpool(service.ingest_uploads)
    return {"deleted": document_id, "index_version": report.version}
