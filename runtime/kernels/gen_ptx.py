#!/usr/bin/env python3
"""Compiles tensor.cu to tensor.ptx with NVRTC, and checks the PTX with ptxas.

Cairn ships the PTX so that building it needs no CUDA toolkit; the driver JIT-compiles it for
the GPU at hand. Run this after changing tensor.cu, and commit both files:

    python3 -m venv /tmp/nv
    /tmp/nv/bin/pip install nvidia-cuda-nvrtc-cu12==12.2.140 nvidia-cuda-nvcc-cu12==12.2.140
    /tmp/nv/bin/python runtime/kernels/gen_ptx.py          # writes tensor.ptx, runs ptxas
    /tmp/nv/bin/python runtime/kernels/gen_ptx.py --check  # fails if tensor.ptx is stale

NVRTC 12.2 writes PTX ISA 8.2, which drivers from CUDA 12.2 (r535) on can load; a newer NVRTC
writes a newer ISA that older drivers refuse, so keep 12.2 unless the kernels need more.
Options: --fmad=false (no contraction into FMA; the kernels also use explicitly rounded
intrinsics), IEEE division and square root, no flush to zero. ptxas checks the PTX for each
GPU generation in ARCHS.
"""
import ctypes
import glob
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "tensor.cu")
TARGET = os.path.join(HERE, "tensor.ptx")
VIRTUAL_ARCH = "compute_70"
ARCHS = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_89", "sm_90"]
OPTIONS = [
    f"--gpu-architecture={VIRTUAL_ARCH}",
    "--fmad=false",
    "--ftz=false",
    "--prec-div=true",
    "--prec-sqrt=true",
]


def nvidia_dir():
    import nvidia  # from the nvidia-cuda-* wheels

    return list(nvidia.__path__)[0]


def nvrtc():
    libs = glob.glob(os.path.join(nvidia_dir(), "cuda_nvrtc", "lib", "libnvrtc.so*"))
    libs = [p for p in libs if "builtins" not in p and ".alt." not in p]
    if not libs:
        sys.exit("libnvrtc not found: pip install nvidia-cuda-nvrtc-cu12")
    return ctypes.CDLL(sorted(libs)[0])


def compile_ptx(source):
    lib = nvrtc()
    prog = ctypes.c_void_p()
    check(lib, lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"tensor.cu", 0, None, None))
    opts = (ctypes.c_char_p * len(OPTIONS))(*[o.encode() for o in OPTIONS])
    status = lib.nvrtcCompileProgram(prog, len(OPTIONS), opts)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    if status != 0:
        sys.exit("nvrtc failed:\n" + log.value.decode())
    check(lib, lib.nvrtcGetPTXSize(prog, ctypes.byref(size)))
    ptx = ctypes.create_string_buffer(size.value)
    check(lib, lib.nvrtcGetPTX(prog, ptx))
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return ptx.value.decode()


def check(lib, status):
    if status != 0:
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        sys.exit("nvrtc: " + lib.nvrtcGetErrorString(status).decode())


def ptxas(path):
    exe = os.path.join(nvidia_dir(), "cuda_nvcc", "bin", "ptxas")
    if not os.path.exists(exe):
        sys.exit("ptxas not found: pip install nvidia-cuda-nvcc-cu12")
    for arch in ARCHS:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "k.cubin")
            subprocess.run([exe, f"-arch={arch}", path, "-o", out], check=True)
        print(f"ptxas -arch={arch}: ok")


def main():
    with open(SOURCE) as f:
        ptx = compile_ptx(f.read())
    header = "// Generated from tensor.cu by gen_ptx.py (" + " ".join(OPTIONS) + "). Do not edit.\n"
    ptx = header + ptx
    if "--check" in sys.argv:
        with open(TARGET) as f:
            if f.read() != ptx:
                sys.exit("tensor.ptx is stale: run gen_ptx.py and commit it")
        print("tensor.ptx is up to date")
    else:
        with open(TARGET, "w") as f:
            f.write(ptx)
        print(f"wrote {TARGET} ({len(ptx)} bytes)")
    ptxas(TARGET)


if __name__ == "__main__":
    main()
