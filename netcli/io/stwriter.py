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

_CHUNK = 64 << 20  # buffered path: bytes per write() call
_DIRECT_BUF = 16 << 20  # O_DIRECT path: bytes per aligned buffer (three of them in flight)
_BLOCK = 4096  # O_DIRECT alignment of buffers, lengths and offsets


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
        entries[name] = {
            "dtype": ST_CODES[str(t.dtype).removeprefix("torch.")],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + n],
        }
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

    The main thread copies the bytes into page-aligned buffers (`_DirectStream`),
    a writer thread writes full buffers at aligned offsets, a third checksums
    each tensor from its own memory. The last buffer is padded to the block
    size and the file cut back to its length.
    """
    import concurrent.futures
    import errno

    fd = _open_direct(path)
    if fd is None:
        return False
    total = sum(len(p) for _, p in pieces)
    stream = _DirectStream(fd, min(_DIRECT_BUF, -(-total // _BLOCK) * _BLOCK))
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = []
            for name, piece in pieces:
                if name is not None:
                    pending.append(pool.submit(_crc_into, sums, name, piece))
                if not stream.put(piece, bar):
                    break
            stream.close(bar)
            for f in pending:
                f.result()
        if stream.error is not None:
            if stream.error.errno == errno.EINVAL and stream.written == 0:
                return False  # O_DIRECT opened but not honoured for these writes: go through the page cache
            raise stream.error
        os.ftruncate(fd, total)
        return True
    finally:
        stream.stop()
        os.close(fd)


def _open_direct(path) -> int | None:
    """Open `path` for O_DIRECT writes; None where the system or the file system has no O_DIRECT."""
    import errno

    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        return os.open(path, os.O_WRONLY | os.O_TRUNC | flag)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return None
        raise


class _DirectStream:
    """Three page-aligned buffers in flight: the caller fills one while a thread writes the full ones.

    O_DIRECT needs aligned buffers, lengths and offsets; after the first
    failed write the stream stops taking data and keeps the error for the caller.
    """

    def __init__(self, fd: int, size: int):
        import mmap
        import queue

        self.fd, self.size = fd, size
        self.free: queue.Queue = queue.Queue()
        self.full: queue.Queue = queue.Queue()
        for _ in range(3):
            self.free.put(mmap.mmap(-1, size))
        self.error: OSError | None = None
        self.written = 0
        self.buf, self.fill, self.at = self.free.get(), 0, 0
        self.thread = threading.Thread(target=self._write_full_buffers, name="netcli-direct-writer", daemon=True)
        self.thread.start()

    def put(self, piece, bar) -> bool:
        """Copy `piece` into the buffers, handing each full one to the writer; False once a write failed."""
        pos = 0
        while pos < len(piece):
            k = min(self.size - self.fill, len(piece) - pos)
            self.buf[self.fill : self.fill + k] = piece[pos : pos + k]
            self.fill, pos = self.fill + k, pos + k
            if self.fill == self.size:
                self.full.put((self.buf, self.size, self.at))
                bar.advance(self.size)
                self.buf, self.fill, self.at = self.free.get(), 0, self.at + self.size
                if self.error is not None:
                    return False
        return self.error is None

    def close(self, bar) -> None:
        """Write the last buffer, padded to the block size, and wait for the writer."""
        if self.error is None and self.fill:
            pad = -self.fill % _BLOCK
            self.buf[self.fill : self.fill + pad] = bytes(pad)
            self.full.put((self.buf, self.fill + pad, self.at))
            bar.advance(self.fill)
        self.stop()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.full.put(None)
            self.thread.join()

    def _write_full_buffers(self) -> None:
        while (item := self.full.get()) is not None:
            buf, n, at = item
            if self.error is None:
                try:
                    _pwrite_all(self.fd, buf, n, at)
                    self.written += n
                except OSError as exc:
                    self.error = exc
            self.free.put(buf)


def _pwrite_all(fd: int, buf, n: int, at: int) -> None:
    import errno

    with memoryview(buf) as whole, whole[:n] as view:
        done = 0
        while done < n:
            k = os.pwrite(fd, view[done:], at + done)
            if k <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            done += k


def _stream_buffered(path, pieces: list, sums: dict, bar) -> None:
    """Write the pieces in order through the page cache, checksumming each tensor in a second thread."""
    import concurrent.futures

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = []
            for name, piece in pieces:
                for start in range(0, len(piece), _CHUNK):
                    chunk = piece[start : start + _CHUNK]
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
        view = view[os.write(fd, view) :]
