"""What fan_mm's Triton kernels compile to on a GPU architecture, read without that GPU.

Triton compiles for a target named by its compute capability whether or not such a device is present, and
its NVIDIA backend ships ``ptxas`` and ``cuobjdump``: so the machine code of the depthwise kernels at their
shipped launch settings can be read on any machine. This is where their speed is first explained: a tile
converted between layouts inside a loop goes through shared memory between barriers, a kernel that needs
more than 255 registers a thread spills to local memory, and registers bound how many warps an SM keeps in
flight to hide memory latency (docs/benchmarks.md, "The forward with its rows prefetched").

For each kernel variant :func:`inspect_kernels` reports, from the compiled kernel:

- registers a thread, spill stores and loads (bytes of ``STL``/``LDL`` in the code, as ``ptxas -v``
  counts them), stack frame and shared memory (``cuobjdump --dump-resource-usage``);
- resident warps an SM by the architecture's register file, warp and block limits (the occupancy
  calculator's arithmetic; ``None`` for an architecture not in :data:`SM_LIMITS`);
- for the innermost loop of the machine code (a backward branch), what one iteration executes: its
  instructions, global loads (``LDG``), float32 multiply-adds (``FFMA`` and its packed and mixed forms),
  barriers (``BAR``) and spills;
- layout conversions (``ttg.convert_layout``) between the first loop and the last loop end of the TTGIR.

Counts are of the code, not of a run: a load in a branch counts once. The figures depend on the Triton
and ``ptxas`` versions, which the result records.
"""
import os.path as osp
import re
import subprocess
import tempfile
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

# Per-SM limits of the occupancy calculator (CUDA C++ Programming Guide, "Compute Capabilities", table
# "Technical Specifications per Compute Capability"): registers, resident warps, resident blocks, shared
# memory (bytes) an SM; registers are allocated to a warp in units of 256.
SM_LIMITS = {
    80: dict(registers=65536, warps=64, blocks=32, shared=167936),
    86: dict(registers=65536, warps=48, blocks=16, shared=102400),
    89: dict(registers=65536, warps=48, blocks=24, shared=102400),
    90: dict(registers=65536, warps=64, blocks=32, shared=233472),
}
REGISTER_UNIT = 256
BLOCK_RESERVED_SHARED = 1024  # shared memory the system reserves per block (compute capability 8.0 and up)

DTYPES = {'bf16': '*bf16', 'fp16': '*fp16', 'fp32': '*fp32'}


class KernelVariant(NamedTuple):
    """One compiled form of a kernel: its constexpr arguments and warps, as the launcher passes them."""
    name: str  # what it computes, e.g. '3x3 forward'
    kernel: object  # the @triton.jit function
    pointers: Dict[str, str]  # pointer argument -> 'input' (the activation dtype) or a Triton type
    constants: Dict[str, object]
    num_warps: int
    launch: str  # the launch setting, as written in the docs


def shipped_variants(stream_launch: Optional[Dict[int, tuple]] = None,
                     stem_maps: Sequence[Tuple[int, int]] = ((128, 224), (256, 112))) -> List[KernelVariant]:
    """The depthwise kernels as ``fan_mm.layers.depthwise_triton`` launches them: the streaming kernel for
    3x3 and 7x7 forwards (with bias) and input gradients (the kernel flipped; for 3x3 also summing the
    output gradient, the bias gradient), at ``stream_launch`` (default ``STREAM_LAUNCH``: (rows, columns,
    channels, warps) by kernel size), and the 7x7 weight gradient at the tiles it takes for FAN-Hybrid's
    stem maps ``stem_maps`` (channels, width), at 896 x 896 input."""
    from fan_mm.layers.depthwise_triton import (STREAM_LAUNCH, _blocks, _dw_forward_stream_kernel,
                                                _dw_weight_grad_kernel)
    stream_launch = stream_launch or STREAM_LAUNCH
    stream = dict(x_ptr='input', w_ptr='input', b_ptr='input', y_ptr='input', sum_ptr='*fp32')
    variants = []
    for k in (3, 7):
        rows, block_w, block_c, num_warps = stream_launch[k]
        launch = f'({rows}, {block_w}, {block_c}, {num_warps})'
        for name, flip, has_bias, sum_input in ((f'{k}x{k} forward', False, True, False),
                                                (f'{k}x{k} input gradient', True, False, k <= 3)):
            variants.append(KernelVariant(name, _dw_forward_stream_kernel, stream, dict(
                swc=1, K=k, FLIP=flip, HAS_BIAS=has_bias, SUM_INPUT=sum_input, BLOCK_W=block_w,
                BLOCK_C=block_c), num_warps, launch))
    seen = set()
    for channels, width in stem_maps:
        block_w, block_c = _blocks(channels, width, 7)
        if (block_w, block_c) in seen:
            continue
        seen.add((block_w, block_c))
        variants.append(KernelVariant(
            '7x7 weight gradient', _dw_weight_grad_kernel,
            dict(x_ptr='input', g_ptr='input', part_ptr='*fp32', bias_part_ptr='*fp32'),
            dict(K=7, BLOCK_W=block_w, BLOCK_C=block_c), 4, f'tiles {block_w} x {block_c}, 4 warps'))
    return variants


def compile_for_gpu(kernel, types: Dict[str, str], constants: Dict[str, object], num_warps: int,
                    capability: int = 90):
    """``kernel`` compiled by Triton for compute capability ``capability`` (90: H100, H200) without such a
    device: Triton's compiled kernel, whose ``asm`` holds the TTGIR (the tiles' layouts), PTX and cubin.

    ``types``: Triton types of the non-constant pointer arguments (others are int32). As the launcher
    specialises them for FAN's maps: pointers, strides and the channel count divisible by 16; unit strides
    are constants. Multiply-adds fused, as launched."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    names = list(kernel.arg_names)
    unknown = sorted(set(constants) - set(names))
    if unknown:
        raise ValueError(f'compile_for_gpu: {kernel.__name__} has no arguments {unknown}')
    signature = {n: 'constexpr' if n in constants else types.get(n, 'i32') for n in names}
    aligned = {(names.index(n),): [['tt.divisibility', 16]] for n in names
               if n not in constants and (n.endswith('_ptr') or n == 'C' or n[0] == 's')}
    source = ASTSource(kernel, signature, {(names.index(n),): v for n, v in constants.items()}, aligned)
    return triton.compile(source, target=GPUTarget('cuda', capability, 32),
                          options=dict(num_warps=num_warps, enable_fp_fusion=True))


def _nvidia_tool(name: str) -> str:
    import triton
    try:
        path = getattr(triton.knobs.nvidia, name).path  # Triton >= 3.4 (honours TRITON_CUOBJDUMP_PATH)
    except AttributeError:
        path = osp.join(osp.dirname(triton.__file__), 'backends', 'nvidia', 'bin', name)
    if not path or not osp.isfile(path):
        raise RuntimeError(f'machine code: Triton {triton.__version__} ships no {name} (looked for {path}); '
                           f'it comes with the NVIDIA backend of the Triton wheel that torch installs')
    return path


def _cuobjdump(cubin: bytes, *flags: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'kernel.cubin')
        with open(path, 'wb') as f:
            f.write(cubin)
        return subprocess.run([_nvidia_tool('cuobjdump'), *flags, path], check=True, capture_output=True,
                              text=True).stdout


def resource_usage(cubin: bytes) -> Dict[str, int]:
    """{'registers', 'stack', 'shared', 'local'}: a thread's registers, stack frame and local memory (bytes)
    and the block's static shared memory (bytes), as ``cuobjdump --dump-resource-usage`` reads them."""
    text = _cuobjdump(cubin, '--dump-resource-usage')
    fields = dict(re.findall(r'\b(REG|STACK|SHARED|LOCAL):(\d+)', text.split('Function', 1)[-1]))
    missing = {'REG', 'STACK', 'SHARED', 'LOCAL'} - set(fields)
    if missing:
        raise RuntimeError(f'cuobjdump --dump-resource-usage printed no {sorted(missing)}:\n{text}')
    return dict(registers=int(fields['REG']), stack=int(fields['STACK']), shared=int(fields['SHARED']),
                local=int(fields['LOCAL']))


_SASS_LINE = re.compile(r'/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;')


def sass_instructions(sass: str) -> List[Tuple[int, str]]:
    """(address, instruction) of each instruction in ``cuobjdump -sass`` output (predicate included)."""
    return [(int(a, 16), ins) for a, ins in _SASS_LINE.findall(sass)]


def loops(instructions: Sequence[Tuple[int, str]]) -> List[Tuple[int, int]]:
    """(first, last) address of each loop: a branch to an earlier address closes one. The branch to itself
    that ends a kernel's code (padding) is none."""
    spans = []
    for address, ins in instructions:
        # '@P5 BRA 0x1890', 'BRA.U UP0, 0x2000' (a uniform predicate operand), 'BRA.DIV ...'
        m = re.search(r'\bBRA(?:\.[A-Z]+)*\s+(?:!?U?P[T0-9]+\s*,\s*)?0x([0-9a-f]+)', ins)
        if m and int(m.group(1), 16) < address:
            spans.append((int(m.group(1), 16), address))
    return spans


def _opcode(ins: str) -> str:
    return re.sub(r'^@!?U?P[T0-9]+\s+', '', ins).split()[0]


def _spill_bytes(opcodes: Sequence[str], op: str) -> int:
    # STL / LDL move 4 bytes, STL.64 8, STL.128 16 (the width suffix; .U8/.S16 narrower ones do not occur
    # in spills of 32-bit registers)
    total = 0
    for o in opcodes:
        parts = o.split('.')
        if parts[0] == op:
            widths = [int(p) for p in parts[1:] if p.isdigit()]
            total += (widths[0] if widths else 32) // 8
    return total


# float32 multiply-adds per instruction: FFMA; FHFMA (sm_120: one operand 16-bit); FFMA2 (two lanes)
_FMA_LANES = {'FFMA': 1, 'FHFMA': 1, 'FFMA2': 2}


def loop_body_counts(instructions: Sequence[Tuple[int, str]]) -> Optional[Dict[str, int]]:
    """What one iteration of the innermost loop (the shortest span of :func:`loops`) executes, or None
    for straight-line code: instructions, global loads, float32 multiply-adds, barriers, spill bytes."""
    spans = loops(instructions)
    if not spans:
        return None
    first, last = min(spans, key=lambda s: s[1] - s[0])
    body = [_opcode(ins) for a, ins in instructions if first <= a <= last]
    return dict(instructions=len(body), global_loads=sum(o.startswith('LDG') for o in body),
                fma=sum(_FMA_LANES.get(o.split('.')[0], 0) for o in body),
                barriers=sum(o.startswith('BAR') for o in body),
                spill_store_bytes=_spill_bytes(body, 'STL'), spill_load_bytes=_spill_bytes(body, 'LDL'))


def loop_layout_conversions(ttgir: str) -> int:
    """``ttg.convert_layout`` operations from the TTGIR's first loop to its last loop end (0 if no loop)."""
    if 'scf.for' not in ttgir:
        return 0
    return ttgir[ttgir.index('scf.for'):ttgir.rindex('scf.yield')].count('ttg.convert_layout')


def resident_warps(registers: int, shared: int, num_warps: int, capability: int) -> Optional[int]:
    """Warps an SM keeps resident for a kernel of ``registers`` a thread and ``shared`` bytes a block (the
    occupancy calculator's arithmetic), or None for an architecture not in :data:`SM_LIMITS`."""
    limits = SM_LIMITS.get(capability)
    if limits is None:
        return None
    per_warp = -(-registers * 32 // REGISTER_UNIT) * REGISTER_UNIT
    blocks = min(limits['blocks'], limits['warps'] // num_warps,
                 (limits['registers'] // per_warp) // num_warps,
                 limits['shared'] // (shared + BLOCK_RESERVED_SHARED))
    return blocks * num_warps


def inspect_variant(variant: KernelVariant, capability: int = 90, dtype: str = 'bf16') -> Dict:
    """The machine-code figures of one kernel variant (see the module's description)."""
    types = {n: DTYPES[dtype] if t == 'input' else t for n, t in variant.pointers.items()}
    try:
        compiled = compile_for_gpu(variant.kernel, types, variant.constants, variant.num_warps, capability)
    except Exception as e:  # Triton's compile errors share no base class across versions (PTXASError, ...)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RuntimeError(f'machine code: {variant.name} {variant.launch} does not compile for '
                           f'sm_{capability}: {reason}') from e
    usage = resource_usage(compiled.asm['cubin'])
    instructions = sass_instructions(_cuobjdump(compiled.asm['cubin'], '-sass'))
    opcodes = [_opcode(ins) for _, ins in instructions]
    shared = max(usage['shared'], getattr(compiled.metadata, 'shared', 0) or 0)
    warps = resident_warps(usage['registers'], shared, variant.num_warps, capability)
    return dict(
        kernel=variant.name, launch=variant.launch, num_warps=variant.num_warps,
        constants={k: v for k, v in variant.constants.items()}, registers=usage['registers'],
        spill_store_bytes=_spill_bytes(opcodes, 'STL'), spill_load_bytes=_spill_bytes(opcodes, 'LDL'),
        stack_bytes=usage['stack'], shared_bytes=shared, resident_warps=warps,
        occupancy=None if warps is None else warps / SM_LIMITS[capability]['warps'],
        instructions=len(instructions), loops=len(loops(instructions)),
        loop_layout_conversions=loop_layout_conversions(compiled.asm['ttgir']),
        innermost_loop=loop_body_counts(instructions))


def inspect_kernels(variants: Optional[Sequence[KernelVariant]] = None, capability: int = 90,
                    dtype: str = 'bf16', log=None) -> Dict:
    """The figures of each of ``variants`` (default: :func:`shipped_variants`) compiled for
    ``capability``, with the toolchain's versions."""
    import torch
    import triton

    from fan_mm.utils.environment import collect_environment
    if dtype not in DTYPES:
        raise ValueError(f'machine code: dtype {dtype!r} is not one of {sorted(DTYPES)}')
    if not hasattr(triton.compiler, 'ASTSource'):
        raise RuntimeError(f'machine code: Triton {triton.__version__} has no triton.compiler.ASTSource '
                           f'(compiling for a GPU that is not present needs Triton >= 3.0)')
    rows = []
    for variant in variants if variants is not None else shipped_variants():
        rows.append(inspect_variant(variant, capability, dtype))
        if log:
            log(f'compiled {variant.name} {variant.launch}: {rows[-1]["registers"]} registers')
    return dict(kind='machine_code', env=collect_environment(('fan_mm', 'torch', 'triton')),
                capability=capability, dtype=dtype, triton=triton.__version__, torch=torch.__version__,
                ptxas=_ptxas_version(capability), kernels=rows)


def _ptxas_version(capability: int) -> Optional[str]:
    # the ptxas Triton's NVIDIA backend picks for the architecture, e.g. 'V13.4.59'
    try:
        from triton.backends.nvidia.compiler import get_ptxas
        tool = get_ptxas(capability)
        text = subprocess.run([getattr(tool, 'path', tool), '--version'], capture_output=True, text=True).stdout
    except (ImportError, TypeError, OSError):
        return None
    m = re.search(r'\bV\d+\.\d+\.\d+', text)
    return f'ptxas {m.group(0)}' if m else None


def _fmt_loop(loop: Optional[Dict], key: str) -> str:
    return '-' if loop is None else str(loop[key])


def machine_code_table(result: Dict) -> str:
    """The result of :func:`inspect_kernels` as a Markdown table."""
    lines = [
        f"Compiled for sm_{result['capability']} ({result['dtype']} tensors), Triton {result['triton']}, "
        f"{result['ptxas'] or 'ptxas'}",
        '',
        '| kernel | launch | registers / thread | spills: stores / loads (B) | resident warps / SM | '
        'layout conversions in loops | innermost loop: instructions | global loads | float32 multiply-adds | '
        'barriers |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for r in result['kernels']:
        warps = '-' if r['resident_warps'] is None else f"{r['resident_warps']} ({r['occupancy']:.0%})"
        loop = r['innermost_loop']
        lines.append(
            f"| {r['kernel']} | {r['launch']} | {r['registers']} | {r['spill_store_bytes']} / "
            f"{r['spill_load_bytes']} | {warps} | {r['loop_layout_conversions']} | "
            f"{_fmt_loop(loop, 'instructions')} | {_fmt_loop(loop, 'global_loads')} | {_fmt_loop(loop, 'fma')} | "
            f"{_fmt_loop(loop, 'barriers')} |")
    return '\n'.join(lines)
