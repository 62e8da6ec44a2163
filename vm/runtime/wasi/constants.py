"""The numbers of WASI preview 1 (``wasi_snapshot_preview1.witx``): errno values, rights, file types,
flags, whence, clock ids, event types, and the sizes of the structs the host functions write.

Why one table: the host functions (:mod:`.preview1`), the filesystem (:mod:`.fs`) and the tests name
these values, never the bare numbers, so a mistake is one line to fix.
"""

from __future__ import annotations

from typing import Dict

# -- errno (witx ``errno``, u16) ------------------------------------------------------------------
ERRNO_NAMES = (
    "SUCCESS", "2BIG", "ACCES", "ADDRINUSE", "ADDRNOTAVAIL", "AFNOSUPPORT", "AGAIN", "ALREADY", "BADF",
    "BADMSG", "BUSY", "CANCELED", "CHILD", "CONNABORTED", "CONNREFUSED", "CONNRESET", "DEADLK",
    "DESTADDRREQ", "DOM", "DQUOT", "EXIST", "FAULT", "FBIG", "HOSTUNREACH", "IDRM", "ILSEQ", "INPROGRESS",
    "INTR", "INVAL", "IO", "ISCONN", "ISDIR", "LOOP", "MFILE", "MLINK", "MSGSIZE", "MULTIHOP",
    "NAMETOOLONG", "NETDOWN", "NETRESET", "NETUNREACH", "NFILE", "NOBUFS", "NODEV", "NOENT", "NOEXEC",
    "NOLCK", "NOLINK", "NOMEM", "NOMSG", "NOPROTOOPT", "NOSPC", "NOSYS", "NOTCONN", "NOTDIR", "NOTEMPTY",
    "NOTRECOVERABLE", "NOTSOCK", "NOTSUP", "NOTTY", "NXIO", "OVERFLOW", "OWNERDEAD", "PERM", "PIPE",
    "PROTO", "PROTONOSUPPORT", "PROTOTYPE", "RANGE", "ROFS", "SPIPE", "SRCH", "STALE", "TIMEDOUT",
    "TXTBSY", "XDEV", "NOTCAPABLE",
)
#: errno name → value (``ERRNO["NOENT"] == 44``)
ERRNO: Dict[str, int] = {name: i for i, name in enumerate(ERRNO_NAMES)}

ESUCCESS, E2BIG, EACCES, EAGAIN, EBADF = 0, 1, 2, 6, 8
EEXIST, EFAULT, EFBIG, EILSEQ, EINVAL, EIO, EISDIR, ELOOP = 20, 21, 22, 25, 28, 29, 31, 32
EMFILE, ENAMETOOLONG, ENOENT, ENOMEM, ENOSPC, ENOSYS, ENOTDIR, ENOTEMPTY = 33, 37, 44, 48, 51, 52, 54, 55
ENOTSOCK, ENOTSUP, EOVERFLOW, EPERM, ESPIPE, EXDEV, ENOTCAPABLE = 57, 58, 61, 63, 70, 75, 76


class WasiError(Exception):
    """An errno a host function returns (raised inside the implementation, returned at its edge)."""

    def __init__(self, errno: int):
        super().__init__(ERRNO_NAMES[errno] if 0 <= errno < len(ERRNO_NAMES) else str(errno))
        self.errno = errno


# -- rights (u64 flags) -----------------------------------------------------------------------------
RIGHT_NAMES = (
    "FD_DATASYNC", "FD_READ", "FD_SEEK", "FD_FDSTAT_SET_FLAGS", "FD_SYNC", "FD_TELL", "FD_WRITE",
    "FD_ADVISE", "FD_ALLOCATE", "PATH_CREATE_DIRECTORY", "PATH_CREATE_FILE", "PATH_LINK_SOURCE",
    "PATH_LINK_TARGET", "PATH_OPEN", "FD_READDIR", "PATH_READLINK", "PATH_RENAME_SOURCE",
    "PATH_RENAME_TARGET", "PATH_FILESTAT_GET", "PATH_FILESTAT_SET_SIZE", "PATH_FILESTAT_SET_TIMES",
    "FD_FILESTAT_GET", "FD_FILESTAT_SET_SIZE", "FD_FILESTAT_SET_TIMES", "PATH_SYMLINK",
    "PATH_REMOVE_DIRECTORY", "PATH_UNLINK_FILE", "POLL_FD_READWRITE", "SOCK_SHUTDOWN", "SOCK_ACCEPT",
)
RIGHTS: Dict[str, int] = {name: 1 << i for i, name in enumerate(RIGHT_NAMES)}
RIGHTS_ALL = (1 << len(RIGHT_NAMES)) - 1
R_FD_READ, R_FD_SEEK, R_FD_TELL, R_FD_WRITE = RIGHTS["FD_READ"], RIGHTS["FD_SEEK"], RIGHTS["FD_TELL"], RIGHTS["FD_WRITE"]
#: the rights of a regular file / a directory (what an fd of that kind can ever have)
RIGHTS_FILE = (RIGHTS["FD_DATASYNC"] | R_FD_READ | R_FD_SEEK | RIGHTS["FD_FDSTAT_SET_FLAGS"] | RIGHTS["FD_SYNC"]
               | R_FD_TELL | R_FD_WRITE | RIGHTS["FD_ADVISE"] | RIGHTS["FD_ALLOCATE"] | RIGHTS["FD_FILESTAT_GET"]
               | RIGHTS["FD_FILESTAT_SET_SIZE"] | RIGHTS["FD_FILESTAT_SET_TIMES"] | RIGHTS["POLL_FD_READWRITE"])
RIGHTS_DIR = (RIGHTS["FD_DATASYNC"] | RIGHTS["FD_FDSTAT_SET_FLAGS"] | RIGHTS["FD_SYNC"]
              | RIGHTS["PATH_CREATE_DIRECTORY"] | RIGHTS["PATH_CREATE_FILE"] | RIGHTS["PATH_LINK_SOURCE"]
              | RIGHTS["PATH_LINK_TARGET"] | RIGHTS["PATH_OPEN"] | RIGHTS["FD_READDIR"] | RIGHTS["PATH_READLINK"]
              | RIGHTS["PATH_RENAME_SOURCE"] | RIGHTS["PATH_RENAME_TARGET"] | RIGHTS["PATH_FILESTAT_GET"]
              | RIGHTS["PATH_FILESTAT_SET_SIZE"] | RIGHTS["PATH_FILESTAT_SET_TIMES"] | RIGHTS["FD_FILESTAT_GET"]
              | RIGHTS["FD_FILESTAT_SET_TIMES"] | RIGHTS["PATH_SYMLINK"] | RIGHTS["PATH_REMOVE_DIRECTORY"]
              | RIGHTS["PATH_UNLINK_FILE"])
#: the rights of stdin / stdout and stderr (what wasmtime reports)
RIGHTS_STDIN, RIGHTS_STDOUT = R_FD_READ, R_FD_WRITE

# -- filetype (u8) ----------------------------------------------------------------------------------
FT_UNKNOWN, FT_BLOCK_DEVICE, FT_CHARACTER_DEVICE, FT_DIRECTORY, FT_REGULAR_FILE = 0, 1, 2, 3, 4
FT_SOCKET_DGRAM, FT_SOCKET_STREAM, FT_SYMBOLIC_LINK = 5, 6, 7

# -- flags ------------------------------------------------------------------------------------------
#: oflags (u16)
O_CREAT, O_DIRECTORY, O_EXCL, O_TRUNC = 1, 2, 4, 8
O_ALL = O_CREAT | O_DIRECTORY | O_EXCL | O_TRUNC
#: fdflags (u16)
FDFLAG_APPEND, FDFLAG_DSYNC, FDFLAG_NONBLOCK, FDFLAG_RSYNC, FDFLAG_SYNC = 1, 2, 4, 8, 16
FDFLAGS_ALL = 31
#: lookupflags (u32)
LOOKUP_SYMLINK_FOLLOW = 1
#: fstflags (u16)
FST_ATIM, FST_ATIM_NOW, FST_MTIM, FST_MTIM_NOW = 1, 2, 4, 8
#: whence (u8)
WHENCE_SET, WHENCE_CUR, WHENCE_END = 0, 1, 2
#: clockid (u32)
CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID = 0, 1, 2, 3
#: eventtype (u8)
EVENTTYPE_CLOCK, EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE = 0, 1, 2
#: subclockflags (u16)
SUBSCRIPTION_CLOCK_ABSTIME = 1
#: advice (u8): normal, sequential, random, willneed, dontneed, noreuse
ADVICE_MAX = 5
#: preopentype (u8)
PREOPENTYPE_DIR = 0

# -- struct sizes -----------------------------------------------------------------------------------
FDSTAT_SIZE, FILESTAT_SIZE, PRESTAT_SIZE, DIRENT_SIZE = 24, 64, 8, 24
IOVEC_SIZE, SUBSCRIPTION_SIZE, EVENT_SIZE = 8, 48, 32

#: how many symlinks one path resolution follows before ``ELOOP`` (Linux's limit)
MAX_SYMLINKS = 40
#: the longest path a program may pass (bytes; longer is ``ENAMETOOLONG``)
MAX_PATH = 4096
