#!/usr/bin/env python3
"""Every relative link in the repository's Markdown resolves to a file inside the
repository: someone who clones it has nothing beside it (no ../shared, no
absolute paths to a development machine).

    check_links.py REPO_ROOT

Checks the tracked *.md files (git ls-files); a link is [text](target) or
![alt](target); http(s)/mailto links and in-page anchors (#...) are skipped, and
a target's own #anchor is ignored. Exit 1 naming each broken link.
"""
import os
import re
import subprocess
import sys

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def main() -> int:
    root = os.path.realpath(sys.argv[1])
    files = subprocess.run(["git", "-C", root, "ls-files", "*.md"], capture_output=True, text=True,
                           check=True).stdout.split()
    broken = []
    for rel in files:
        path = os.path.join(root, rel)
        in_code = False
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.lstrip().startswith("```"):
                    in_code = not in_code
                    continue
                if in_code:
                    continue
                for target in LINK.findall(line):
                    if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                        continue
                    file_part = target.split("#", 1)[0]
                    if not file_part:
                        continue
                    if file_part.startswith("/"):
                        broken.append(f"{rel}:{n}: {target}: an absolute path")
                        continue
                    resolved = os.path.realpath(os.path.join(os.path.dirname(path), file_part))
                    if not (resolved == root or resolved.startswith(root + os.sep)):
                        broken.append(f"{rel}:{n}: {target}: outside the repository")
                    elif not os.path.exists(resolved):
                        broken.append(f"{rel}:{n}: {target}: no such file")
    for b in broken:
        print(b)
    print(f"{len(files)} Markdown files, {len(broken)} broken links")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
