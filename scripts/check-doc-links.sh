#!/usr/bin/env bash
# Fails if ARCHITECTURE.md or docs/*.md names a repository file that does not exist.
# Checked: relative Markdown links `[text](path)` (anchors dropped; resolved from the
# document's directory), and backticked repository paths — a token with a `/` (globs
# allowed, e.g. `migrations/*/0040_scheduler.sql`; a trailing `/` means a directory) and
# a bare `*.md`, `*.toml`, `*.yaml`/`*.yml` name, which must then be at the root. Skipped:
# URLs, HTTP routes (`/ops/...`, a leading `/`), paths outside the repository (`../` from
# the root), Rust paths (`::`), tokens with spaces or placeholders (`<…>`, `{…}`, `$…`).
# "Exists" means tracked by git, or new and not ignored (`git ls-files -co --exclude-standard`). Not wired into .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

docs=(ARCHITECTURE.md docs/*.md)
tracked=$(git ls-files --cached --others --exclude-standard)
fail=0
checked=0

exists() { # a file, a directory holding tracked files, or a glob matching one
    local p=${1%/}
    if [[ $p == *'*'* ]]; then
        [ -n "$(git ls-files --cached --others --exclude-standard -- "$p")" ]
    else
        grep -qxF -- "$p" <<<"$tracked" || grep -q -- "^${p//./\\.}/" <<<"$tracked"
    fi
}

normalize() { # resolve ./ and ../ in a relative path (no filesystem access)
    local IFS=/ out=() part
    for part in $1; do
        case $part in
            '' | .) ;;
            ..) if [ ${#out[@]} -eq 0 ]; then echo "../"; return; fi; unset 'out[-1]' ;;
            *) out+=("$part") ;;
        esac
    done
    (IFS=/; echo "${out[*]}")
}

for doc in "${docs[@]}"; do
    dir=$(dirname "$doc")
    # Relative links. Code spans are removed first, so `[x](y)` inside backticks is text.
    while IFS=: read -r line target; do
        target=${target%%#*}
        [ -z "$target" ] && continue
        case $target in http://* | https://* | mailto:*) continue ;; esac
        path=$(normalize "$dir/$target")
        checked=$((checked + 1))
        if [[ $path == ../* ]] || ! exists "$path"; then
            echo "$doc:$line: link to a missing file: $target"
            fail=1
        fi
    done < <(sed 's/`[^`]*`//g' "$doc" | grep -no '\]([^)[:space:]]*)' | sed 's/\](\(.*\))$/\1/' || true)

    # Backticked repository paths.
    while IFS=: read -r line token; do
        token=${token#\`}; token=${token%\`}
        case $token in
            *' '* | *'<'* | *'{'* | *'$'* | *::* | /* | ../* | http://* | https://* | '') continue ;;
        esac
        if [[ $token == */* ]]; then
            # A URL path or a MIME type is not a repository path: the first component must
            # be something at the repository's root.
            first=${token%%/*}
            exists "$first" || { [[ $token =~ \.(rs|md|toml|ya?ml|sql|sh|py|txt|json)$ ]] || continue; }
        elif [[ ! $token =~ ^[A-Za-z0-9_.-]+\.(md|toml|ya?ml)$ ]]; then
            continue
        fi
        checked=$((checked + 1))
        if ! exists "$token"; then
            echo "$doc:$line: backticked path does not exist: $token"
            fail=1
        fi
    done < <(grep -no '`[^`]*`' "$doc" || true)
done

if [ "$fail" -ne 0 ]; then
    echo "check-doc-links: FAILED ($checked references checked)" >&2
    exit 1
fi
echo "check-doc-links: ok ($checked references checked in ${#docs[@]} files)"
