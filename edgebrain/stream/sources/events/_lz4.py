"""LZ4 frame decompression callable from compiled (Numba) code.

AEDAT 4 files hold one LZ4 frame per packet, a few kB each. Calling the decompressor from Python
once per packet, then parsing the packet and copying its events, cost about as much as the
decompression itself. :func:`lz4f_decompress` lets a compiled loop call ``LZ4F_decompress`` of the
liblz4 that the ``lz4`` package already carries (its extension module exports the LZ4F API), through
a function address passed as an argument: nothing address-specific is compiled in, so the kernel
stays cacheable.

:func:`load` returns None when those symbols cannot be found (another build of ``lz4``); readers
then keep to the Python path.
"""

from __future__ import annotations

import ctypes

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

LZ4F_VERSION = 100


@intrinsic
def lz4f_decompress(typingctx, fn, ctx, dst, dst_size, src, src_size):
    """``LZ4F_decompress(ctx, dst, &dst_size, src, &src_size, NULL)`` through the function address
    ``fn``; every argument is an address (intp). Returns the C result (0: a whole frame was
    decoded; an error code or a size hint otherwise)."""
    sig = types.uint64(types.intp, types.intp, types.intp, types.intp, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        i8p = ir.IntType(8).as_pointer()
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(i64, [i8p, i8p, i64.as_pointer(), i8p, i64.as_pointer(), i8p])
        f = builder.inttoptr(args[0], fnty.as_pointer())
        call_args = [builder.inttoptr(args[1], i8p), builder.inttoptr(args[2], i8p),
                     builder.inttoptr(args[3], i64.as_pointer()), builder.inttoptr(args[4], i8p),
                     builder.inttoptr(args[5], i64.as_pointer()), ir.Constant(i8p, None)]
        return builder.call(f, call_args)

    return sig, codegen


@intrinsic
def lz4f_reset(typingctx, fn, ctx):
    """``LZ4F_resetDecompressionContext(ctx)`` through the function address ``fn`` (after a frame
    that did not decode whole, so that the next one starts clean)."""
    sig = types.void(types.intp, types.intp)

    def codegen(context, builder, signature, args):
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i8p])
        f = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(f, [builder.inttoptr(args[1], i8p)])
        return context.get_dummy_value()

    return sig, codegen


class Context:
    """A decompression context and the function addresses the kernel needs (``decompress``,
    ``reset``, ``ctx``: ints); freed by :meth:`close`."""

    def __init__(self, lib):
        self._lib = lib
        self._ptr = ctypes.c_void_p()
        if lib.LZ4F_createDecompressionContext(ctypes.byref(self._ptr), LZ4F_VERSION) != 0 or not self._ptr.value:
            raise OSError("LZ4F_createDecompressionContext failed")
        self.ctx = int(self._ptr.value)
        self.decompress = ctypes.cast(lib.LZ4F_decompress, ctypes.c_void_p).value
        self.reset = ctypes.cast(lib.LZ4F_resetDecompressionContext, ctypes.c_void_p).value

    def close(self) -> None:
        if self._ptr.value:
            self._lib.LZ4F_freeDecompressionContext(self._ptr)
            self._ptr = ctypes.c_void_p()
            self.ctx = 0

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


_LIB: list = []  # [the library] or [None] once looked up


def load() -> Context | None:
    """A new decompression context, or None if the lz4 package's LZ4F symbols are not available."""
    if not _LIB:
        lib = None
        try:
            import lz4.frame._frame as ext

            lib = ctypes.CDLL(ext.__file__)
            for name in ("LZ4F_createDecompressionContext", "LZ4F_freeDecompressionContext", "LZ4F_decompress",
                         "LZ4F_resetDecompressionContext"):
                getattr(lib, name)
            lib.LZ4F_createDecompressionContext.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_uint]
            lib.LZ4F_createDecompressionContext.restype = ctypes.c_size_t
            lib.LZ4F_freeDecompressionContext.argtypes = [ctypes.c_void_p]
            lib.LZ4F_freeDecompressionContext.restype = ctypes.c_size_t
        except (ImportError, OSError, AttributeError):
            lib = None
        _LIB.append(lib)
    if _LIB[0] is None:
        return None
    try:
        return Context(_LIB[0])
    except OSError:
        return None
