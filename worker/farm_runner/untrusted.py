"""Reading what a package could have written, as data and nothing more (used on both sides).

Every file under a build's box, and every file a sandboxed command writes, may be the package's
doing: a symbolic link to a host secret, a FIFO that blocks a reader for ever, a file of a
gigabyte, a folder of a million entries. The host reads such files only through this module:
each path component opened without following links, regular files only, opened without blocking,
at most `limit` bytes; walks count their entries and give up past a cap.
"""

import errno
import json
import os
import stat


def line(text, limit=300):
    """A string a package controls, as one bounded line of plain text: control characters (line
    breaks among them) shown as escapes, never acted on by a page, a log or a mail."""
    out = []
    for ch in str(text):
        code = ord(ch)
        out.append(ch if 0x20 <= code != 0x7f and not 0x80 <= code < 0xa0 and code not in (0x2028, 0x2029)
                   else "\\x%02x" % code if code < 0x100 else "\\u%04x" % code)
        if len(out) > limit:
            break
    text = "".join(out)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def lines(value, limit=300):
    """`line` of a string, or of each string of a list (a test's hosts, its missing paths)."""
    return [line(v, limit) for v in value] if isinstance(value, (list, tuple)) else line(value, limit)


class Untrusted(Exception):
    """A file from the sandbox that the host will not read (a link, a FIFO, too big, missing)."""


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def read_bytes(root, relative, limit):
    """The bytes of ROOT/RELATIVE, where ROOT is a folder the runner made and trusts, and no
    component of RELATIVE may be a link. Raises Untrusted for anything but a regular file of at
    most `limit` bytes."""
    parts = [p for p in relative.replace(os.sep, "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise Untrusted("%r is not a path below the build's folder" % relative)
    fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        for name in parts[:-1]:
            try:
                nxt = os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
            except OSError as exc:
                raise Untrusted("%s: %s" % (relative, _why(exc)))
            os.close(fd)
            fd = nxt
        try:
            leaf = os.open(parts[-1], os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC, dir_fd=fd)
        except OSError as exc:
            raise Untrusted("%s: %s" % (relative, _why(exc)))
    finally:
        os.close(fd)
    try:
        st = os.fstat(leaf)
        if not stat.S_ISREG(st.st_mode):
            raise Untrusted("%s is not a regular file" % relative)
        if st.st_size > limit:
            raise Untrusted("%s is larger than %d bytes" % (relative, limit))
        chunks, size = [], 0
        while size <= limit:
            data = os.read(leaf, min(1 << 20, limit + 1 - size))
            if not data:
                break
            chunks.append(data)
            size += len(data)
        if size > limit:
            raise Untrusted("%s is larger than %d bytes" % (relative, limit))
        return b"".join(chunks)
    finally:
        os.close(leaf)


def read_json(root, relative, limit):
    """A JSON document from the sandbox; Untrusted when it cannot be read or parsed."""
    data = read_bytes(root, relative, limit)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Untrusted("%s is not JSON: %s" % (relative, exc))


def _why(exc):
    if exc.errno == errno.ELOOP:
        return "a symbolic link (not followed)"
    if exc.errno == errno.ENOTDIR:
        return "a component is not a folder (or is a link)"
    if exc.errno == errno.ENOENT:
        return "missing"
    return exc.strerror or str(exc)


def disk_usage(paths, max_entries):
    """Bytes allocated under `paths` (a file once, however many hard links it has), never following
    a link, and whether the walk stopped at `max_entries` (a tree that large is itself past any
    sensible limit)."""
    total, seen, stack, linked = 0, 0, list(paths), set()
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                seen += 1
                if seen > max_entries:
                    return total, True
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                    if (st.st_dev, st.st_ino) in linked:
                        continue  # a hard link to a file counted already (the install's, from its cache)
                    linked.add((st.st_dev, st.st_ino))
                total += getattr(st, "st_blocks", 0) * 512 or st.st_size
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
    return total, False


def write_new(path, text):
    """Write a runner file that must not exist yet (O_EXCL, no link followed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
