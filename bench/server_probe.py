"""What bench/attack_driver.py and bench/soak_driver.py read off the server process under test
(imported from the scripts' own folder)."""


def rss_mb(pid):
    """The process's resident set size in MB (VmRSS), NaN when it reports none."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def huge_pages_mb(pid):
    """The process's resident transparent huge pages in MB (AnonHugePages of
    /proc/PID/smaps_rollup), NaN where the kernel reports none."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def rss_parts_mb(pid):
    """The process's anonymous (heap, stacks) and file-backed resident memory in MB (RssAnon,
    RssFile), NaN each when the kernel reports none."""
    parts = {"RssAnon:": float("nan"), "RssFile:": float("nan")}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key = line.split(maxsplit=1)[0] if line.strip() else ""
            if key in parts:
                parts[key] = int(line.split()[1]) / 1024
    return parts["RssAnon:"], parts["RssFile:"]
