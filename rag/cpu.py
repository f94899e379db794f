"""The CPU's instruction sets -> the llama.cpp (GGML) build options it can run, and a key that
names that exact set (the wheel cache is keyed by it, so one CPU's build never reaches another).

Standard library only: `make install` runs it with the system Python before the venv exists.

    python3 -m rag.cpu cmake-args [--cpu native|portable]   the CMAKE_ARGS for llama-cpp-python
    python3 -m rag.cpu key [--cpu ...]                        e.g. x86_64-avx2-469ab622da28
    python3 -m rag.cpu names [--cpu ...]                      the options on, e.g. AVX, AVX2
    python3 -m rag.cpu describe [--cpu ...]                   what is on and off, and why

An option is on only when the CPU reports every flag it needs (Linux's /proc/cpuinfo names, which
the kernel clears when the OS does not enable a feature). Each option is also written out when it
is off: with GGML_NATIVE=OFF, ggml turns SSE4.2, AVX, AVX2, FMA, F16C and BMI2 on by default,
which an AVX-only CPU cannot run.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

AVX512_BASE = ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw")  # ggml's -mavx512*


@dataclass(frozen=True)
class Option:
    name: str  # the GGML CMake option
    flags: tuple[str, ...]  # /proc/cpuinfo flags it needs, all of them
    after: str | None = None  # an option that must be on too (an extension of it)
    portable: bool = True  # part of the portable (AVX2-generation) build


# The order is the order of the generations; `after` names what an extension extends.
OPTIONS: tuple[Option, ...] = (
    Option("GGML_SSE42", ("sse4_2",)),
    Option("GGML_AVX", ("avx",), "GGML_SSE42"),
    Option("GGML_F16C", ("f16c",), "GGML_AVX"),
    Option("GGML_FMA", ("fma",), "GGML_AVX"),
    Option("GGML_AVX2", ("avx2",), "GGML_AVX"),
    Option("GGML_BMI2", ("bmi2",)),
    Option("GGML_AVX_VNNI", ("avx_vnni",), "GGML_AVX2", portable=False),  # Intel only: no Zen 4
    Option("GGML_AVX512", AVX512_BASE, "GGML_AVX2", portable=False),
    Option("GGML_AVX512_VBMI", ("avx512vbmi",), "GGML_AVX512", portable=False),
    Option("GGML_AVX512_VNNI", ("avx512_vnni",), "GGML_AVX512", portable=False),
    Option("GGML_AVX512_BF16", ("avx512_bf16",), "GGML_AVX512", portable=False),
)

# Never on: on Sapphire Rapids inside VMs that report AMX but do not grant it to processes, a
# build with AMX crashes at the first token (seen on this project's own CI machine).
ALWAYS_OFF = ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")

LEVELS = ("native", "portable")

# The names llama_print_system_info() gives what a build was compiled with -> the flags each needs.
FEATURES: dict[str, tuple[str, ...]] = {
    "SSE3": ("pni",),
    "SSSE3": ("ssse3",),
    **{o.name.removeprefix("GGML_"): o.flags for o in OPTIONS},
    "AMX_INT8": ("amx_tile", "amx_int8"),
}


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The flags of the first CPU in a /proc/cpuinfo text.

    >>> sorted(cpu_flags("processor : 0\\nflags : fpu avx2 fma\\n"))
    ['avx2', 'fma', 'fpu']
    """
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def read_cpu_flags(path: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    try:
        return cpu_flags(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return frozenset()  # not Linux: no option is turned on, the build stays baseline


def is_x86(machine: str | None = None) -> bool:
    return (machine or platform.machine()).lower() in {"x86_64", "amd64", "i686", "i386"}


def build_options(flags: Iterable[str], level: str = "native") -> dict[str, bool]:
    """Every GGML instruction-set option, on or off, for a CPU with `flags`.

    >>> opts = build_options({"sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f"})
    >>> opts["GGML_AVX2"], opts["GGML_AVX512"]  # AVX-512F alone is not ggml's AVX-512 set
    (True, False)
    """
    if level not in LEVELS:
        raise ValueError(f"unknown CPU level {level!r}: use one of {', '.join(LEVELS)}")
    have = set(flags)
    enabled: dict[str, bool] = {}
    for option in OPTIONS:
        enabled[option.name] = (
            (option.portable or level == "native")
            and all(flag in have for flag in option.flags)
            and (option.after is None or enabled[option.after])
        )
    enabled.update(dict.fromkeys(ALWAYS_OFF, False))
    return enabled


def cmake_args(options: dict[str, bool]) -> str:
    """The CMAKE_ARGS for llama-cpp-python: not native, every option written out."""
    parts = ["-DGGML_NATIVE=OFF"]
    parts += [f"-D{name}={'ON' if on else 'OFF'}" for name, on in options.items()]
    return " ".join(parts)


def enabled_names(options: dict[str, bool]) -> list[str]:
    return [name.removeprefix("GGML_") for name, on in options.items() if on]


def build_key(options: dict[str, bool], machine: str | None = None) -> str:
    """A name for this exact set: the machine, the highest generation, and a hash of the set.

    Two CPUs share a key only if they get the same options, so a wheel cached under one key
    runs on every CPU that computes that key.
    """
    machine = (machine or platform.machine()).lower()
    names = enabled_names(options)
    tag = next(
        (t for t, o in (("avx512", "AVX512"), ("avx2", "AVX2"), ("avx", "AVX")) if o in names),
        "base",
    )
    digest = hashlib.sha256(" ".join([machine, *names]).encode()).hexdigest()[:12]
    return f"{machine}-{tag}-{digest}"


def describe(flags: frozenset[str], options: dict[str, bool]) -> str:
    lines = []
    for option in OPTIONS:
        missing = [f for f in option.flags if f not in flags]
        if options[option.name]:
            state = "on"
        elif missing:
            state = f"off (the CPU lacks {', '.join(missing)})"
        elif option.after and not options[option.after]:
            state = f"off (needs {option.after})"
        else:
            state = "off (not in the portable build)"
        lines.append(f"{option.name:18} {state}")
    lines += [f"{name:18} off (AMX: crashes in VMs that do not grant it)" for name in ALWAYS_OFF]
    return "\n".join(lines)


def relevant_flags(flags: Iterable[str]) -> list[str]:
    """The CPU's flags that some option looks at, in the table's order (for messages)."""
    known = [f for option in OPTIONS for f in option.flags]
    have = set(flags)
    return [f for f in dict.fromkeys(known) if f in have]


def missing_flags(features: Iterable[str], flags: Iterable[str]) -> list[str]:
    """The flags a build's features need that the CPU lacks.

    >>> missing_flags(["AVX2", "AVX_VNNI"], {"avx", "avx2", "avx512_vnni"})
    ['avx_vnni']
    """
    have = set(flags)
    needed = [f for feature in features for f in FEATURES.get(feature, ())]
    return [f for f in dict.fromkeys(needed) if f not in have]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m rag.cpu",
        description="llama.cpp build options from this CPU's instruction sets (/proc/cpuinfo)",
    )
    parser.add_argument("what", choices=("cmake-args", "key", "names", "describe"))
    parser.add_argument(
        "--cpu",
        default="native",
        help="native: every extension this CPU has (AMX excepted); portable: at most the AVX2 "
        "generation (SSE4.2, AVX, F16C, FMA, AVX2, BMI2), each still only if present",
    )
    parser.add_argument(
        "--cpuinfo",
        type=Path,
        default=None,
        help="read the flags from this file (default /proc/cpuinfo): another CPU's, to see "
        "what it would get",
    )
    args = parser.parse_args(argv)
    if args.cpu not in LEVELS:
        parser.error(f"--cpu must be one of {', '.join(LEVELS)}, got {args.cpu!r}")
    if args.cpuinfo is not None and not args.cpuinfo.is_file():
        parser.error(f"--cpuinfo {args.cpuinfo}: no such file")
    flags = read_cpu_flags(args.cpuinfo or Path("/proc/cpuinfo")) if is_x86() else frozenset()
    options = build_options(flags, args.cpu) if is_x86() else {}
    if args.what == "cmake-args":
        print(cmake_args(options))
    elif args.what == "key":
        print(build_key(options))
    elif args.what == "names":
        print(", ".join(enabled_names(options)) or "no x86 extensions")
    else:
        print(describe(flags, options) if options else f"{platform.machine()}: no x86 options")
    return 0


if __name__ == "__main__":
    sys.exit(main())
