# The release rehearsal, sourced by scripts/image.sh (`scripts/image.sh rehearse`): the
# pipeline's logic — start the new release beside the old, verify the new, promote it only
# on PASS, otherwise stop it and keep the old — played with containers on this machine
# (docs/image.md "Rehearsal"). Three releases of the image built by `image.sh build`:
#
#   good    the image itself, re-tagged as a new release: verified, promoted, the old stopped
#   crash   a release whose roles exit at start: its entrypoint drops DATABASE_URL, as a
#           release that reads a variable the manifests do not give
#   silent  a release that starts, answers /health and /ready and takes webhooks, but never
#           delivers a reply: its SMS sender points at a wrong URL
#
# Each bad one must be refused: FAIL recorded (IMAGE_RECORD) and posted to the serving
# release (the verification_failed alert in the fake Discord's ERROR channel), the new
# containers stopped, and the old still answering an SMS (a second verify, PASS).

# A release derived from the good image: the same binary, a defect in how it starts.
derive_release() {
    local base=$1 tag=$2 entrypoint=$3 ctx=$WORK/release-$2
    mkdir -p "$ctx"
    printf 'FROM %s\nLABEL lead-agent.release=%s\nENTRYPOINT %s\n' "$base" "$tag" "$entrypoint" >"$ctx/Dockerfile"
    docker build -q -t "$NAME:rehearse-$tag" "$ctx" >/dev/null || die "the $tag release did not build"
    echo "$NAME:rehearse-$tag"
}

other_colour() { [ "$1" = blue ] && echo green || echo blue; }

# The serving set still answers an SMS end to end.
still_serving() {
    local image=$1 colour=$2
    if verify_colour "$image" "$colour"; then
        say "  the old release ($colour) still answers: verify PASS"
        return 0
    fi
    say "  the old release ($colour) does NOT answer: $(jq -r '[.steps[] | select(.status=="FAIL") | .step] | join(", ")' "$WORK/verify.$colour.json" 2>/dev/null)"
    return 1
}

# Posts the verdict to the serving release's ops listener (the /ops record and, on FAIL,
# its verification_failed alert) and appends it to the log file.
record_verdict() {
    local serving=$1 colour=$2 release=$3 json=$WORK/verify.$2.json
    [ -s "$json" ] || die "verify wrote no report for $release"
    curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $(secret ops-token)" \
        -H 'Content-Type: application/json' --data-binary "@$json" \
        "http://127.0.0.1:$(port "$serving" web 3)/ops/verifications" ||
        say "  note: the serving release did not take the record"
    python3 - "$json" "$RECORD" "$release" <<'PY'
import json, sys, datetime
report, record, release = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
lines = [f"\n### {report['at'][:16].replace('T', ' ')} UTC — {'PASS' if report['passed'] else 'FAIL'} — rehearsal, release `{release}` at {report['url']}\n"]
lines += [f"- {s['step']}: {s['status']} — {s['detail']}" for s in report["steps"]]
with open(record, "a") as f:
    f.write("\n".join(lines) + "\n")
PY
}

# One rollout: returns 0 when the new release was promoted, 1 when it was refused.
rollout() {
    local image=$1 release=$2 old=$LIVE new started
    new=$(other_colour "$old")
    started=$(date +%s)
    say "rollout of '$release' ($image): $new starts beside $old"
    start_colour "$image" "$new"
    if wait_up "$new" 40; then
        say "  $new is up; verifying it"
    else
        say "  $new did not come up: $(for r in web worker scheduler; do
            printf '%s %s; ' "$r" "$(docker inspect -f '{{.State.Status}} exit {{.State.ExitCode}}' "lead-agent-$new-$r" 2>/dev/null)"
        done)"
        docker logs --tail 3 "lead-agent-$new-web" 2>&1 | sed 's/^/    web: /' >&2 || true
    fi
    local verdict=FAIL
    verify_colour "$image" "$new" && verdict=PASS
    record_verdict "$old" "$new" "$release"
    if [ "$verdict" = PASS ]; then
        stop_colour "$old"
        LIVE=$new
        say "  verify PASS: '$release' promoted; $old stopped ($(($(date +%s) - started)) s)"
        ROLLOUTS+=("$release: PASS, promoted")
        return 0
    fi
    say "  verify FAIL ($(jq -r '[.steps[] | select(.status=="FAIL") | .step] | join(", ")' "$WORK/verify.$new.json")): '$release' refused; stopping $new"
    stop_colour "$new"
    local serving=no
    still_serving "$(docker inspect -f '{{.Config.Image}}' "lead-agent-$old-web")" "$old" && serving=yes
    ROLLOUTS+=("$release: FAIL, refused; old still serving: $serving ($(($(date +%s) - started)) s)")
    return 1
}

cmd_rehearse() {
    local good=${1:-$NAME:local} failures=0
    command -v jq >/dev/null || apt-get install -y -qq jq >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq jq >/dev/null; } || die "jq is needed"
    ensure_engine
    docker image inspect "$good" >/dev/null 2>&1 || die "no image $good: run scripts/image.sh build first"
    cmd_down >/dev/null 2>&1 || true
    # Whatever happens, nothing of the rehearsal keeps running after it (IMAGE_KEEP=1 aside).
    [ "${IMAGE_KEEP:-}" = 1 ] || trap 'cmd_down >/dev/null 2>&1 || true' EXIT
    : >"$RECORD.new"
    RECORD_FINAL=$RECORD
    RECORD=$RECORD.new
    ROLLOUTS=()
    LIVE=blue
    # A database of its own each time: the verify leads of earlier runs stay out of it.
    ensure_fakes
    ensure_database fresh
    say "the old release: $good as blue"
    cmd_up "$good" blue
    local alerts_before
    alerts_before=$(error_alerts)
    local next crash silent
    next=$(derive_release "$good" next '["lead-agent"]')
    crash=$(derive_release "$good" crash '["env", "-u", "DATABASE_URL", "lead-agent"]')
    silent=$(derive_release "$good" silent '["env", "TWILIO_API_BASE=http://127.0.0.1:9", "lead-agent"]')
    rollout "$next" good || failures=$((failures + 1))
    rollout "$crash" crash && failures=$((failures + 1))
    rollout "$silent" silent && failures=$((failures + 1))
    # Each refused release raised one verification_failed alert through the serving one.
    local alerts
    for _ in $(seq 1 20); do
        alerts=$(($(error_alerts) - alerts_before))
        [ "$alerts" -ge 2 ] && break
        sleep 1
    done
    cat "$RECORD" >>"$RECORD_FINAL"
    say "rehearsal summary (log: $RECORD_FINAL):"
    local line
    for line in "${ROLLOUTS[@]}"; do say "  $line"; done
    say "  verification_failed alerts in the fake Discord's ERROR channel: $alerts (expected 2)"
    [ "$alerts" -eq 2 ] || failures=$((failures + 1))
    for line in "${ROLLOUTS[@]}"; do
        case "$line" in *"old still serving: no"*) failures=$((failures + 1)) ;; esac
    done
    [ "$failures" -eq 0 ] || die "the rehearsal did not go as a release must ($failures deviations)"
    say "rehearsal PASS: the good release promoted, both bad ones refused, the old release answering throughout"
}

error_alerts() {
    grep '"channel":"777"' "$WORK/fakes/discord.jsonl" 2>/dev/null | grep -c 'verify FAILED' || true
}
