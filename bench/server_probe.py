"""What bench/attack_driver.py and bench/soak_driver.py read off the server process under test
(imported from the scripts' own folder)."""


def rss_mb(pid):
    """The process's resident set size in MB (VmRSS), NaN when it reports none."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")
