"""libc's system calls that `os` lacks (mount, umount2, unshare, setns, prctl), called
through _ctypes' own building blocks.

`import ctypes` and a `CDLL` cost `run`'s start ~1 ms on the 2-core VM (ctypes' type
zoo, its endianness classes, the CDLL's set-up; ~3 ms in a bare interpreter, with
struct), and a monitor's first mount more; these few function pointers ~0.1 ms.
They are what ctypes' own `CDLL(None, use_errno=True).name` is made of: a `CFuncPtr`
class with cdecl and errno flags, an int result, a handle of the running program.
`errno()` is the calling thread's errno as the last of these calls left it (ctypes'
`get_errno`); `byref(Int(0))` passes an int's address, for the calls that fill one in
(give such a function no `argtypes`: ints then go as C ints, as ctypes passes them).
This module is the one place lamina imports ctypes (its fallback below).
"""

from __future__ import annotations

try:
    import _ctypes

    class Int(_ctypes._SimpleCData):
        _type_ = "i"

    class ULong(_ctypes._SimpleCData):
        _type_ = "L"

    class CharP(_ctypes._SimpleCData):
        _type_ = "z"

    class _Function(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = Int

    class _Program:
        _handle = _ctypes.dlopen(None, 0)  # the running program: libc's symbols, as CDLL(None)

    errno = _ctypes.get_errno
    byref = _ctypes.byref

    def function(name: str, *argtypes):
        """libc's `name` (int result), its arguments converted as `argtypes` say when given."""
        f = _Function((name, _Program))
        if argtypes:
            f.argtypes = argtypes
        return f
except (ImportError, AttributeError):  # an interpreter without these internals: ctypes itself
    import ctypes

    Int, ULong, CharP, errno, byref = ctypes.c_int, ctypes.c_ulong, ctypes.c_char_p, ctypes.get_errno, ctypes.byref

    def function(name: str, *argtypes):
        f = getattr(ctypes.CDLL(None, use_errno=True), name)
        if argtypes:
            f.argtypes = argtypes
        return f
