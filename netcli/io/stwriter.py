"""Write a .safetensors file in one pass, with a crc32 of each tensor, through O_DIRECT where it can.

netcli writes the safetensors layout itself rather than calling
safetensors.torch.save_file, which first copies every tensor into one buffer
and leaves the crc32s the header carries to a second pass over the memory:
here each byte is copied, written and checksummed once, and the stream goes
through O_DIRECT so that a fresh process writing a GiB does not stall in the
page cache. The file is safetensors' own format; the safetensors library
reads it.
"""
from __future__ import annotations

import json
import os
import threading
import zlib

from netcli.io.format import META_CRC32, ST_CODES
_CHUNK = 64 << 20          # buffered path: bytes per write() call
_DIRECT_BUF = 16 << 20     # O_DIRECT path: bytes per aligned buffer (three of them in flight)
_BLOCK = 4096              # O_DIRECT alignment of buffers, lengths and offsets


def write_safetensors(path, tensors: dict, metadata: dict[str, str], bar) -> None:
    """Write `tensors` as a .safetensors file in one pass: each byte copied, written and checksummed once.

    The layout is safetensors' own (an 8-byte header size, the JSON header,
    then each tensor's bytes in order), so the safetensors library reads it.
    safetensors.torch.save_file would first copy every tensor into one buffer,
    and the crc32s the header carries would need a second pass over the
    memory; here the header is written with placeholders of the same width,
    the tensors' bytes stream to the file while a second thread checksums
    them, and the header is rewritten at the end.

    The stream goes through O_DIRECT where the file system takes it: a fresh
    process's buffered writes of a GiB stall while the kernel finds and then
    flushes page-cache memory (the fsync pays the rest), whereas direct writes
    from a few aligned buffers go to the disk at its own speed. Elsewhere
    (no O_DIRECT, EINVAL) the same bytes are written through the page cache.
    The caller (atomic_path) still fsyncs: that makes the size and the
    block allocation durable.
    """
    entries, offset = {}, 0
    for name, t in tensors.items():
        n = t.numel() * t.element_size()
        entries[name] = {"dtype": ST_CODES[str(t.dtype).removeprefix("torch.")], "shape": list(t.shape),
                         "data_offsets": [offset, offset + n]}
        offset += n

    def header(sums: dict[str, str]) -> bytes:
        meta = {**metadata, META_CRC32: json.dumps(sums, sort_keys=True)}
        raw = json.dumps({"__metadata__": meta, **entries}, separators=(",", ":")).encode()
        raw += b" " * (-(8 + len(raw)) % 64)  # the data starts 64-byte aligned, as torch allocates (8 | len)
        return len(raw).to_bytes(8, "little") + raw

    first = header({name: "0" * 8 for name in tensors})  # crc32s are 8 hex digits: the same length
    pieces = [(None, memoryview(first))] + [(name, _bytes_of(t)) for name, t in tensors.items() if t.numel()]
    sums = {name: 0 for name in tensors}
    if not _stream_direct(path, pieces, sums, bar):
        sums = {name: 0 for name in tensors}
        _stream_buffered(path, pieces, sums, bar)
    final = header({name: f"{value & 0xFFFFFFFF:08x}" for name, value in sums.items()})
    assert len(final) == len(first)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, final, 0)
    finally:
        os.close(fd)


def _bytes_of(t) -> memoryview:
    """Return a CPU tensor's bytes without copying them."""
    import torch
    return memoryview(t.reshape(-1).view(torch.uint8).numpy())


def _stream_direct(path, pieces: list, sums: dict, bar) -> bool:
    """Write the pieces in order through O_DIRECT; return False where the file system refuses it.

    The main thread copies the bytes into one of three page-aligned buffers, a
    writer thread writes full buffers at aligned offsets, a third checksums
    each tensor from its own memory. The last buffer is padded to the block
    size and the file cut back to its length.
    """
    import concurrent.futures
    import errno
    import mmap
    import queue
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | flag)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False
        raise
    total = sum(len(p) for _, p in pieces)
    size = min(_DIRECT_BUF, -(-total // _BLOCK) * _BLOCK)
    free: queue.Queue = queue.Queue()
    full: queue.Queue = queue.Queue()
    for _ in range(3):
        free.put(mmap.mmap(-1, size))
    state: dict = {"error": None, "written": 0}

    def writer() -> None:
        while (item := full.get()) is not None:
            buf, n, at = item
            if state["error"] is None:
                try:
                    with memoryview(buf) as whole, whole[:n] as view:
                        done = 0
                        while done < n:
                            k = os.pwrite(fd, view[done:], at + done)
                            if k <= 0:
                                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                            done += k
                    state["written"] += n
                except OSError as exc:
                    state["error"] = exc
            free.put(buf)

    thread = threading.Thread(target=writer, name="netcli-direct-writer", daemon=True)
    thread.start()
    pending: list[concurrent.futures.Future] = []
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            buf, fill, at = free.get(), 0, 0
            for name, piece in pieces:
                if name is not None:
                    pending.append(pool.submit(_crc_into, sums, name, piece))
                pos = 0
                while pos < len(piece):
                    k = min(size - fill, len(piece) - pos)
                    buf[fill:fill + k] = piece[pos:pos + k]
                    fill, pos = fill + k, pos + k
                    if fill == size:
                        full.put((buf, size, at))
                        bar.advance(size)
                        buf, fill, at = free.get(), 0, at + size
                        if state["error"] is not None:
                            break
                if state["error"] is not None:
                    break
            if state["error"] is None and fill:
                pad = -fill % _BLOCK
                buf[fill:fill + pad] = bytes(pad)
                full.put((buf, fill + pad, at))
                bar.advance(fill)
            full.put(None)
            thread.join()
            for f in pending:
                f.result()
        error = state["error"]
        if error is not None:
            if error.errno == errno.EINVAL and state["written"] == 0:
                return False  # O_DIRECT opened but not honoured for these writes: go through the page cache
            raise error
        os.ftruncate(fd, total)
        return True
    finally:
        if thread.is_alive():
            full.put(None)
            thread.join()
        os.close(fd)


def _stream_buffered(path, pieces: list, sums: dict, bar) -> None:
    """Write the pieces in order through the page cache, checksumming each tensor in a second thread."""
    import concurrent.futures
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = []
            for name, piece in pieces:
                for start in range(0, len(piece), _CHUNK):
                    chunk = piece[start:start + _CHUNK]
                    if name is not None:
                        pending.append(pool.submit(_crc_into, sums, name, chunk))
                    _write_all(fd, chunk)
                    bar.advance(len(chunk))
            for f in pending:
                f.result()
    finally:
        os.close(fd)


def _crc_into(sums: dict, name: str, chunk) -> None:
    # one checksum worker per file: the chunks of a tensor are summed in order
    sums[name] = zlib.crc32(chunk, sums[name])


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
