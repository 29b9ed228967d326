"""The file formats netcli reads and writes: suffixes, the metadata keys it adds, safetensors dtypes.

Kept apart from the readers and writers so that each of them (and `show`,
which needs no torch) shares one table.
"""

from __future__ import annotations

from netcli.core.errors import Location, NetcliError, Problem, first_line

SAFETENSORS = ".safetensors"
TORCH_SUFFIXES = (".pt", ".pth", ".params")
FORMATS = (SAFETENSORS,) + TORCH_SUFFIXES  # checkpoints
NUMPY = ".npy"
TENSOR_SUFFIXES = (".pt", ".pth", NUMPY, SAFETENSORS)  # a single tensor: run's --input and --output

# Metadata keys of a .safetensors file netcli writes (all values are strings).
META_SPEC = "netcli.spec"  # the resolved spec, YAML text
META_SHA256 = "netcli.spec_sha256"  # sha256 of that text
META_NETCLI = "netcli.version"
META_TORCH = "torch.version"
META_ALIASES = "netcli.aliases"  # JSON {tied name: stored name}
META_CRC32 = "netcli.crc32"  # JSON {stored name: crc32 of its bytes, 8 hex digits}

# safetensors dtype -> (torch dtype name, bytes per element); listing a file needs no torch import
SAFETENSORS_DTYPES = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U64": ("uint64", 8),
    "U32": ("uint32", 4),
    "U16": ("uint16", 2),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "F8_E5M2": ("float8_e5m2", 1),
    "C64": ("complex64", 8),
}
DAMAGED_HINT = "the file is damaged or was cut short; save it again"
# torch dtype name -> safetensors dtype code
ST_CODES = {dtype: code for code, (dtype, _) in SAFETENSORS_DTYPES.items()}


def numel(shape) -> int:
    """The number of elements of a tensor of this shape (no torch needed)."""
    n = 1
    for s in shape:
        n *= int(s)
    return n


def damaged(path: str, message: str) -> NetcliError:
    """The error for a file that is not what it says it is (cut short, flipped bytes, inconsistent)."""
    return NetcliError(Problem(message, location=Location(str(path)), hint=DAMAGED_HINT))


def error_text(exc: BaseException) -> str:
    """A reading library's error in one line (miniz's advice about its internals left out)."""
    return first_line(exc).split(". This is an internal miniz error")[0]
