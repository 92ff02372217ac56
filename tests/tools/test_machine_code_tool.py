"""tools/analysis/triton_machine_code.py and fan_mm.benchmarks.machine_code: the reading of SASS, the
occupancy arithmetic by hand, and the tool on the shipped kernels compiled for sm_90 on this CPU."""
import json
import re

import pytest

from fan_mm.benchmarks.machine_code import (loop_body_counts, loop_layout_conversions, loops, machine_code_table,
                                            resident_warps, sass_instructions)
from tool_loading import load_tool

# cuobjdump -sass output as sm_90 prints it, cut down: a row loop (0x0100-0x0160) holding an inner loop
# (0x0120-0x0140, the innermost), a branch forward, the uniform-predicate branch form of sm_120, and the
# branch to itself that pads the end of every kernel
SASS = """
        code for sm_90a
                Function : kernel
        /*0000*/                   LDC R1, c[0x0][0x28] ;                              /* 0x00000a00ff017b82 */
                                                                                       /* 0x000e220000000800 */
        /*0010*/               @P2 EXIT ;                                              /* 0x000000000000294d */
        /*0100*/                   LDG.E.64 R4, desc[UR4][R2.64] ;                     /* 0x0000000402047981 */
        /*0110*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;                       /* 0x0000000000007b1d */
        /*0120*/                   LDG.E.128 R8, desc[UR4][R6.64] ;                    /* 0x0000000406087981 */
        /*0128*/                   FFMA R12, R8, R4, R12 ;                             /* 0x000000040c0c7223 */
        /*0130*/                   STL.64 [R1+0x8], R12 ;                              /* 0x0000080c01007387 */
        /*0134*/                   LDL R13, [R1+0x4] ;                                 /* 0x00000400010d7983 */
        /*0138*/                   FFMA R13, R9, R5, R13 ;                             /* 0x000000050d0d7223 */
        /*0140*/               @!P0 BRA 0x120 ;                                        /* 0xfffffffc00fc7947 */
        /*0150*/               @P1 BRA 0x170 ;                                         /* 0xfffffffc00fc7947 */
        /*0160*/                   BRA.U UP0, 0x100 ;                                  /* 0xffffffd5008c7547 */
        /*0170*/                   EXIT ;                                              /* 0x000000000000794d */
        /*0180*/                   BRA 0x180;                                          /* 0xfffffffc00fc7947 */
"""


def test_sass_loops_and_the_innermost_iteration():
    ins = sass_instructions(SASS)
    assert ins[0] == (0, 'LDC R1, c[0x0][0x28]') and ins[-1] == (0x180, 'BRA 0x180')
    assert len(ins) == 14
    assert loops(ins) == [(0x120, 0x140), (0x100, 0x160)]  # neither the forward branch nor the padding
    assert loop_body_counts(ins) == dict(instructions=6, global_loads=1, fma=2, barriers=0,
                                         spill_store_bytes=8, spill_load_bytes=4)
    assert loop_body_counts([(0, 'EXIT')]) is None


def test_layout_conversions_counted_in_loops_only():
    ttgir = ('%a = ttg.convert_layout %x\n scf.for %i = ... {\n %b = ttg.convert_layout %y\n scf.for {\n'
             ' %c = ttg.convert_layout %z\n scf.yield\n }\n scf.yield\n }\n %d = ttg.convert_layout %w\n')
    assert loop_layout_conversions(ttgir) == 2
    assert loop_layout_conversions('%a = ttg.convert_layout %x\n') == 0


def test_resident_warps_by_hand():
    # sm_90: 65,536 registers an SM, allocated to warps in units of 256, at most 64 warps and 32 blocks
    assert resident_warps(80, 0, 4, 90) == 24  # 80 * 32 = 2,560 a warp: 25 warps, 6 blocks of 4
    assert resident_warps(255, 0, 4, 90) == 8  # 8,160 -> 8,192 a warp: 8 warps, 2 blocks
    assert resident_warps(127, 0, 4, 90) == 16  # 4,064 -> 4,096: 16 warps
    assert resident_warps(32, 0, 4, 90) == 64  # the warp limit
    assert resident_warps(32, 0, 1, 90) == 32  # the block limit: 32 blocks of one warp
    assert resident_warps(32, 100 * 1024, 4, 90) == 8  # 228 KiB of shared memory / (100 + 1) KiB: 2 blocks
    assert resident_warps(80, 0, 4, 86) == 24 and resident_warps(40, 0, 4, 86) == 48  # 48 warps on sm_86
    assert resident_warps(80, 0, 4, 75) is None  # not in the table




@pytest.fixture(scope='module')
def shipped(tmp_path_factory):
    triton = pytest.importorskip('triton')
    if not hasattr(triton.compiler, 'ASTSource'):
        pytest.skip(f'Triton {triton.__version__} has no triton.compiler.ASTSource')
    out = tmp_path_factory.mktemp('machine_code') / 'sm90.json'
    load_tool('analysis/triton_machine_code').main(['--json', str(out)])
    return json.loads(out.read_text())


def test_tool_reads_the_shipped_kernels_for_sm90(shipped):
    from fan_mm.layers.depthwise_triton import STREAM_LAUNCH
    assert shipped['capability'] == 90 and shipped['dtype'] == 'bf16' and shipped['triton']
    rows = {r['kernel']: r for r in shipped['kernels']}
    assert list(rows) == ['3x3 forward', '3x3 input gradient', '7x7 forward', '7x7 input gradient',
                          '7x7 weight gradient']
    for name, r in rows.items():
        assert 0 < r['registers'] <= 255 and r['loops'] >= 1, name
        assert r['loop_layout_conversions'] == 0 and r['innermost_loop']['barriers'] == 0, name
        assert r['resident_warps'] == resident_warps(r['registers'], r['shared_bytes'], r['num_warps'], 90)
    for k in (3, 7):
        _, block_w, block_c, num_warps = STREAM_LAUNCH[k]
        per_thread = block_w * block_c // (32 * num_warps)
        for name in (f'{k}x{k} forward', f'{k}x{k} input gradient'):
            loop = rows[name]['innermost_loop']
            # one row iteration: each of the k * k taps one multiply-add on each of a thread's elements
            assert loop['fma'] == k * k * per_thread, name
    # the 3x3 weights are loaded before the row loop: a row iteration loads only the next row's three
    # column taps (the kernel shipped until 2026-12-08 reloaded the nine weights every row)
    assert rows['3x3 forward']['innermost_loop']['global_loads'] == 3
    assert rows['3x3 forward']['spill_store_bytes'] == 0
    table = machine_code_table(shipped)
    assert '| 7x7 weight gradient | tiles 16 x 64, 4 warps |' in table and 'sm_90' in table


def test_tool_other_launch_settings(capsys):
    pytest.importorskip('triton')
    tool = load_tool('analysis/triton_machine_code')
    args = tool.parse_args(['--stream-launch', '3=16,16,128,2', '--capability', '80', '--dtype', 'fp16'])
    assert args.stream_launch == [(3, (16, 16, 128, 2))] and args.capability == 80
    with pytest.raises(SystemExit):
        tool.parse_args(['--stream-launch', '5=8,8,64,4'])
    with pytest.raises(SystemExit):
        tool.parse_args(['--capability', '12'])
    assert '--capability 12' in capsys.readouterr().err


def test_a_kernel_that_does_not_compile_is_named():
    triton = pytest.importorskip('triton')
    if not hasattr(triton.compiler, 'ASTSource'):
        pytest.skip(f'Triton {triton.__version__} has no triton.compiler.ASTSource')
    from fan_mm.benchmarks.machine_code import inspect_kernels, inspect_variant, shipped_variants
    forward = shipped_variants()[0]
    broken = forward._replace(constants=dict(forward.constants, NO_SUCH_ARGUMENT=1))
    with pytest.raises(RuntimeError, match=re.escape(f'3x3 forward {forward.launch} does not compile for sm_90: ')
                       + r".*has no arguments \['NO_SUCH_ARGUMENT'\]"):
        inspect_variant(broken)
    with pytest.raises(ValueError, match=r"dtype 'int8' is not one of \['bf16', 'fp16', 'fp32'\]"):
        inspect_kernels([forward], dtype='int8')
