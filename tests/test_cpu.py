"""The llama.cpp build options from real CPUs' /proc/cpuinfo flag lines (copied from machines'
own output): no option is ever on that the CPU lacks, each CPU gets its best supported set, and
the wheel cache's key changes whenever the set does."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from rag import cpu
from tests.conftest import ROOT

# AMD EPYC 9B14 (Zen 4, a KVM guest): AVX-512 with VNNI, BF16 and VBMI, but not AVX-VNNI (the
# VEX-encoded Intel extension) - the CPU of the "Illegal instruction" report.
ZEN4_EPYC = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse "
    "sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl nonstop_tsc "
    "cpuid extd_apicid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe "
    "popcnt aes xsave avx f16c rdrand hypervisor lahf_lm cmp_legacy cr8_legacy abm sse4a "
    "misalignsse 3dnowprefetch osvw topoext ssbd ibrs ibpb stibp vmmcall fsgsbase tsc_adjust bmi1 "
    "avx2 smep bmi2 erms invpcid avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb "
    "avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves avx512_bf16 clzero "
    "xsaveerptr wbnoinvd arat avx512vbmi umip avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni "
    "avx512_bitalg avx512_vpopcntdq rdpid fsrm"
)
# Intel Xeon (Sapphire Rapids, this project's CI machine): AMX and AVX-VNNI.
SAPPHIRE_RAPIDS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse "
    "sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc "
    "cpuid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt "
    "tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch "
    "cpuid_fault ssbd ibrs ibpb stibp ibrs_enhanced fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms "
    "invpcid avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb avx512cd sha_ni avx512bw "
    "avx512vl xsaveopt xsavec xgetbv1 xsaves avx_vnni avx512_bf16 wbnoinvd arat avx512vbmi umip "
    "pku ospke avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq rdpid "
    "bus_lock_detect cldemote movdiri movdir64b fsrm md_clear serialize tsxldtrk ibt amx_bf16 "
    "avx512_fp16 amx_tile amx_int8 flush_l1d arch_capabilities"
)
# Intel Xeon @ 2.00GHz, family 6 model 85 stepping 3 (Skylake-SP): AVX-512 without extensions.
SKYLAKE_SP = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse "
    "sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc "
    "cpuid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes "
    "xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch invpcid_single pti ssbd ibrs ibpb "
    "stibp fsgsbase tsc_adjust bmi1 hle avx2 smep bmi2 erms invpcid rtm mpx avx512f avx512dq "
    "rdseed adx smap clflushopt clwb avx512cd avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves "
    "arat md_clear arch_capabilities"
)
# Intel Xeon, the same family and model, stepping 7 (Cascade Lake): AVX-512 VNNI added.
CASCADE_LAKE = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse "
    "sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc "
    "cpuid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes "
    "xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch invpcid_single ssbd ibrs ibpb "
    "stibp ibrs_enhanced fsgsbase tsc_adjust bmi1 hle avx2 smep bmi2 erms invpcid rtm mpx avx512f "
    "avx512dq rdseed adx smap clflushopt clwb avx512cd avx512bw avx512vl xsaveopt xsavec xgetbv1 "
    "xsaves arat avx512_vnni md_clear arch_capabilities"
)
# AMD EPYC 7543P (Zen 3, a KVM guest): AVX2, no AVX-512.
ZEN3_EPYC = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse "
    "sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm rep_good nopl xtopology cpuid "
    "extd_apicid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe "
    "popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm cmp_legacy cr8_legacy "
    "abm sse4a misalignsse 3dnowprefetch osvw perfctr_core ssbd ibrs ibpb stibp vmmcall fsgsbase "
    "tsc_adjust bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap clflushopt clwb sha_ni xsaveopt "
    "xsavec xgetbv1 xsaves clzero xsaveerptr wbnoinvd arat umip pku ospke vaes vpclmulqdq rdpid "
    "overflow_recov succor fsrm"
)
# Intel Xeon E5-2690 0 (Sandy Bridge-EP): AVX only, no F16C, FMA or AVX2.
SANDY_BRIDGE = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx "
    "fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc arch_perfmon pebs bts "
    "rep_good nopl xtopology nonstop_tsc aperfmperf eagerfpu pni pclmulqdq dtes64 monitor ds_cpl "
    "vmx smx est tm2 ssse3 cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic popcnt tsc_deadline_timer "
    "aes xsave avx lahf_lm epb tpr_shadow vnmi flexpriority ept vpid xsaveopt dtherm ida arat pln "
    "pts"
)
# AMD FX-4130 (Bulldozer): AVX with AMD's FMA4, which is not the FMA (FMA3) ggml compiles for.
BULLDOZER = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse "
    "sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl nonstop_tsc "
    "extd_apicid aperfmperf pni pclmulqdq monitor ssse3 cx16 sse4_1 sse4_2 popcnt aes xsave avx "
    "lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw ibs xop "
    "skinit wdt lwp fma4 nodeid_msr topoext perfctr_core perfctr_nb arat cpb hw_pstate npt lbrv "
    "svm_lock nrip_save tsc_scale vmcb_clean flushbyasid decodeassists pausefilter pfthreshold"
)

AVX2_GEN = {"SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2"}
AVX512_GEN = AVX2_GEN | {"AVX512"}
BEST = {
    "zen4-epyc": (ZEN4_EPYC, AVX512_GEN | {"AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16"}),
    "sapphire-rapids": (
        SAPPHIRE_RAPIDS,
        AVX512_GEN | {"AVX_VNNI", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16"},
    ),
    "skylake-sp": (SKYLAKE_SP, AVX512_GEN),
    "cascade-lake": (CASCADE_LAKE, AVX512_GEN | {"AVX512_VNNI"}),
    "zen3-epyc": (ZEN3_EPYC, AVX2_GEN),
    "sandy-bridge": (SANDY_BRIDGE, {"SSE42", "AVX"}),
    "bulldozer": (BULLDOZER, {"SSE42", "AVX"}),
}


def cpuinfo(flags: str) -> str:
    return f"processor\t: 0\nvendor_id\t: X\nflags\t\t: {flags}\nbugs\t\t: spectre_v1\n"


def flags_of(name: str) -> frozenset[str]:
    return cpu.cpu_flags(cpuinfo(BEST[name][0]))


@pytest.mark.parametrize("name", BEST)
@pytest.mark.parametrize("level", cpu.LEVELS)
def test_no_option_is_on_that_the_cpu_lacks(name: str, level: str) -> None:
    flags = flags_of(name)
    options = cpu.build_options(flags, level)
    for option in cpu.OPTIONS:
        if options[option.name]:
            assert set(option.flags) <= flags, option.name
    assert not any(options[name] for name in cpu.ALWAYS_OFF)  # AMX, even on Sapphire Rapids


@pytest.mark.parametrize("name", BEST)
def test_each_cpu_gets_its_best_supported_set(name: str) -> None:
    options = cpu.build_options(flags_of(name), "native")
    assert set(cpu.enabled_names(options)) == BEST[name][1]


@pytest.mark.parametrize("name", BEST)
def test_portable_is_the_avx2_generation_at_most(name: str) -> None:
    flags = flags_of(name)
    portable = set(cpu.enabled_names(cpu.build_options(flags, "portable")))
    assert portable == BEST[name][1] & AVX2_GEN


def test_zen4_does_not_get_avx_vnni_that_sapphire_rapids_does() -> None:
    zen4 = cpu.build_options(flags_of("zen4-epyc"))
    spr = cpu.build_options(flags_of("sapphire-rapids"))
    assert (zen4["GGML_AVX_VNNI"], spr["GGML_AVX_VNNI"]) == (False, True)
    # A build made on Sapphire Rapids, run on Zen 4, needs exactly the one flag Zen 4 lacks
    assert cpu.missing_flags(cpu.enabled_names(spr), flags_of("zen4-epyc")) == ["avx_vnni"]


def test_cmake_args_write_every_option_out_not_native() -> None:
    args = cpu.cmake_args(cpu.build_options(flags_of("sandy-bridge"))).split()
    assert args[0] == "-DGGML_NATIVE=OFF"
    # ggml turns AVX2, FMA, F16C and BMI2 on by default when not native: they must say OFF here
    for name in ("AVX2", "FMA", "F16C", "BMI2", "AVX512", "AVX_VNNI", "AMX_INT8"):
        assert f"-DGGML_{name}=OFF" in args
    assert "-DGGML_AVX=ON" in args
    assert len(args) == 1 + len(cpu.OPTIONS) + len(cpu.ALWAYS_OFF)


def test_the_key_changes_with_the_set_and_only_with_it() -> None:
    keys = {name: cpu.build_key(cpu.build_options(flags_of(name)), "x86_64") for name in BEST}
    sets = {name: frozenset(best) for name, (_, best) in BEST.items()}
    for a in BEST:
        for b in BEST:
            assert (keys[a] == keys[b]) == (sets[a] == sets[b]), (a, b)
    assert keys["zen4-epyc"].startswith("x86_64-avx512-")
    assert keys["sandy-bridge"].startswith("x86_64-avx-")


def test_no_flags_means_no_extension() -> None:
    assert cpu.cpu_flags("model name : something\n") == frozenset()
    assert cpu.enabled_names(cpu.build_options(frozenset())) == []


def test_make_keys_the_wheel_cache_by_the_cpus_own_set(tmp_path: Path) -> None:
    """`make -n install` for a Zen 4 and a Sapphire Rapids cpuinfo: different wheelhouses, and
    the Zen 4 build has AVX-VNNI off."""
    plans = {}
    for name in ("zen4-epyc", "sapphire-rapids"):
        info = tmp_path / f"{name}.txt"
        info.write_text(cpuinfo(BEST[name][0]), encoding="utf-8")
        plans[name] = subprocess.run(
            ["make", "-n", "install", f"CPUINFO={info}", "VENV=" + str(tmp_path / "venv")],
            cwd=ROOT,
            env={**os.environ, "HOME": str(tmp_path / "home")},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    zen4_key = cpu.build_key(cpu.build_options(flags_of("zen4-epyc")))
    spr_key = cpu.build_key(cpu.build_options(flags_of("sapphire-rapids")))
    assert f"home/.cache/rag/llama-{zen4_key}" in plans["zen4-epyc"]
    assert f"home/.cache/rag/llama-{spr_key}" in plans["sapphire-rapids"]
    assert "-DGGML_AVX_VNNI=OFF" in plans["zen4-epyc"]
    assert "-DGGML_AVX_VNNI=ON" in plans["sapphire-rapids"]
    assert "-m rag.llm.probe" in plans["zen4-epyc"]  # the install proves the engine runs
