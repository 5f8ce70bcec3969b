"""Unpack an sdist, inside the sandbox, bounded before anything is written: the members are
counted and their sizes added up against the disk limit first, and a member that would land
outside the folder (an absolute path, `..`, a link pointing out, a device) refuses the sdist."""
import errno
import os
import zlib

MAX_MEMBERS = 100000


class Refused(Exception):
    """The sdist cannot be unpacked: its own fault (a sentence for the report)."""


def unpack(archive, dest, max_bytes, max_members=MAX_MEMBERS):
    """Unpack `archive` into the new folder `dest`; returns the source root (its one top folder)."""
    os.makedirs(dest)
    # Only the module the archive's format needs (each costs milliseconds to import).
    if archive.lower().endswith(".zip"):
        import zipfile
        extract, format_error = _unzip, zipfile.BadZipFile
    else:
        import tarfile
        extract, format_error = _untar, tarfile.TarError
    try:
        extract(archive, dest, max_bytes, max_members)
    except (format_error, EOFError, OSError, ValueError, zlib.error) as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise  # the build's disk, not the archive
        raise Refused("%s: %s" % (type(exc).__name__, exc))
    tops = os.listdir(dest)
    if len(tops) == 1 and os.path.isdir(os.path.join(dest, tops[0])) and not os.path.islink(os.path.join(dest, tops[0])):
        return os.path.join(dest, tops[0])
    return dest


def _check_totals(count, size, max_bytes, max_members):
    if count > max_members:
        raise Refused("it has more than %d members" % max_members)
    if size > max_bytes:
        raise Refused("it unpacks to more than %d bytes, past the build's disk limit" % max_bytes)


def _safe_name(name):
    parts = name.replace("\\", "/").split("/")
    return not (name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]))


def _unzip(archive, dest, max_bytes, max_members):
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        _check_totals(len(infos), sum(i.file_size for i in infos), max_bytes, max_members)
        for info in infos:
            if not _safe_name(info.filename):
                raise Refused("member %r would land outside the sdist's folder" % info.filename)
        zf.extractall(dest)


def _untar(archive, dest, max_bytes, max_members):
    import tarfile

    with tarfile.open(archive) as tf:
        members, size = [], 0
        for member in tf:
            members.append(member)
            size += member.size if member.isfile() else 0
            _check_totals(len(members), size, max_bytes, max_members)
        if hasattr(tarfile, "data_filter"):
            for member in members:
                try:
                    tarfile.data_filter(member, dest)
                except tarfile.FilterError as exc:
                    raise Refused(str(exc))
            tf.extractall(dest, members=members, filter="data")
            return
        # Pythons before the extraction filters (3.9.16 and older): the same rules by hand.
        for member in members:
            if not _safe_name(member.name) or not (member.isfile() or member.isdir() or member.issym()):
                raise Refused("member %r is not a plain file or folder inside the sdist" % member.name)
            if member.issym():
                target = os.path.normpath(os.path.join(os.path.dirname(member.name), member.linkname))
                if os.path.isabs(member.linkname) or target.startswith(".."):
                    raise Refused("member %r links outside the sdist" % member.name)
        tf.extractall(dest, members=members)
