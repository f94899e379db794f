"""`/v1/documents`: upload files (multipart), list and delete them. Uploads go through the same
incremental ingestion as `rag ingest`, on the upload folder (`uploads.py`: names, atomic
writes), in a worker thread (the event loop never blocks); the new chunks are searchable when
the call returns.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from starlette.concurrency import run_in_threadpool

from rag.catalog import FileEntry
from rag.labels import Labels, parse_tags
from rag.server.service import Service, ServiceDep

router = APIRouter(tags=["documents"])


def describe(source: str, entry: FileEntry, service: Service) -> dict[str, Any]:
    return {
        "id": source,
        "title": entry.title,
        "size": entry.size,
        "n_chunks": entry.n_chunks,
        "sha256": entry.sha256,
        "uploaded": service.is_upload(entry),
        "collection": entry.collection,
        "file_type": entry.file_type,
        "modified": entry.modified,
        "tags": entry.tags,
    }


@router.post(
    "/v1/documents",
    status_code=201,
    summary="Upload files and ingest them",
    responses={409: {"description": "a file of that name was uploaded before (see replace)"}},
)
async def upload(
    files: Annotated[
        list[UploadFile],
        File(description="txt, md, html, pdf, docx, odt, pptx, xlsx, csv or epub files"),
    ],
    service: ServiceDep,
    replace: Annotated[
        bool, Form(description="replace earlier uploads of the same names (else 409)")
    ] = False,
    collection: Annotated[
        str | None, Form(description="the collection of these files (default: default)")
    ] = None,
    tag: Annotated[
        list[str] | None, Form(description="key=value tags of these files (repeat the field)")
    ] = None,
) -> dict[str, Any]:
    labels = Labels(collection, parse_tags(tag) if tag else None)
    uploaded = await service.upload(files, replace, labels)
    entries = service.documents()
    return {
        "documents": [
            {**describe(i, entries[i], service), "replaced": i in uploaded.replaced}
            for i in uploaded.ids
        ],
        "skipped": [{"name": n, "reason": r} for n, r in uploaded.refused.items()],
        "index_version": uploaded.version,
    }


@router.get("/v1/documents", summary="The documents in the index")
async def list_documents(service: ServiceDep, collection: str | None = None) -> dict[str, Any]:
    entries = await run_in_threadpool(service.documents)
    return {
        "documents": [
            describe(s, e, service)
            for s, e in entries.items()
            if collection is None or e.collection == collection
        ]
    }


@router.get("/v1/collections", summary="The collections and what each holds")
async def list_collections(service: ServiceDep) -> dict[str, Any]:
    entries = await run_in_threadpool(service.documents)
    counts: dict[str, list[int]] = {}
    for entry in entries.values():
        held = counts.setdefault(entry.collection, [0, 0])
        held[0] += 1
        held[1] += entry.n_chunks
    return {
        "collections": [
            {"name": name, "documents": n, "chunks": chunks}
            for name, (n, chunks) in sorted(counts.items())
        ]
    }


@router.delete("/v1/collections/{name}", summary="Delete a collection and its documents")
async def delete_collection(name: str, service: ServiceDep) -> dict[str, Any]:
    removed, report = await run_in_threadpool(service.remove_collection, name)
    return {"deleted": name, "documents": removed, "index_version": report.version}


@router.delete("/v1/documents/{document_id:path}", summary="Delete an uploaded document")
async def delete_document(document_id: str, service: ServiceDep) -> dict[str, Any]:
    entry = (await run_in_threadpool(service.documents)).get(document_id)
    if entry is None:
        raise HTTPException(404, f"no document {document_id!r} in the index")
    report = await run_in_threadpool(service.remove_upload, document_id, entry)
    return {"deleted": document_id, "index_version": report.version}
