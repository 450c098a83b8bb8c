"""Every line the `hotline` command prints: text for people, ``--json`` for scripts.

Commands get values from the library or the station's API and hand them here;
nothing else in the CLI formats output.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..forms import FORMS
from ..i18n import t, when

if TYPE_CHECKING:  # the verifier is imported only by `hotline verify`
    from ..keys import StationCertificate
    from ..notes import NoteVerifier
    from ..roster import Roster
    from ..transcript import Report

Json = dict[str, Any]


def ts(ms: int | None) -> str:
    """A relay time in UTC, to the second; "-" when there is none."""
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def as_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent)


# --- setup --------------------------------------------------------------------------


def roster_written(out: Path, parties: list[str]) -> str:
    return f"wrote {out}; to be signed by {', '.join(sorted(parties))}"


def roster_signed(party: str, missing: list[str]) -> str:
    return f"signed by {party}; " + (
        f"still needs {', '.join(missing)}" if missing else "complete: every party has signed"
    )


def _root_keys(root: NoteVerifier) -> dict[str, str]:
    from ..hybrid import pq_of

    pq = pq_of(root)
    return {"root": root.encode(), **({"pq_root": pq.encode()} if pq is not None else {})}


def roster_data(r: Roster) -> Json:
    return {
        "name": r.name,
        "version": r.version,
        "relay_key": r.relay_key.encode(),
        "relays": [k.encode() for k in r.relays],
        "min_envelope_version": r.min_envelope_version,
        "min_envelope_version_from": r.min_envelope_from_ms,
        "receipt_runs": r.receipt_runs,
        "parties": {
            p.name: {"language": p.language, **_root_keys(p.root)} for p in r.parties.values()
        },
        "channels": {
            c.name: {
                "members": list(c.members),
                "deadlines": c.deadlines,
                "link_test_seconds": c.link_test_seconds,
            }
            for c in r.channels.values()
        },
    }


def roster(r: Roster, json_out: bool) -> str:
    data = roster_data(r)
    if json_out:
        return as_json(data, indent=1)
    lines = [f"roster {data['name']} v{data['version']}: signed by every party"]
    for name, p in data["parties"].items():
        lines.append(f"  party {name} ({p['language']})")
    for name, c in data["channels"].items():
        lines.append(
            f"  channel {name}: {', '.join(c['members'])}; deadlines "
            + ", ".join(f"{k} {v}s" for k, v in c["deadlines"].items())
        )
    return "\n".join(lines)


def certified(cert: StationCertificate) -> str:
    until = datetime.fromtimestamp(cert.not_after, UTC)
    return f"station {cert.ident} certified until {until:%Y-%m-%d}"


def rotated(old: StationCertificate, new: StationCertificate) -> str:
    return (
        f"station {new.ident} rotated: key {old.signing.hex()[:16]} revoked, "
        f"key {new.signing.hex()[:16]} certified until "
        f"{datetime.fromtimestamp(new.not_after, UTC):%Y-%m-%d}"
    )


def operator_added(name: str, api_url: str) -> str:
    return f"operator {name!r} can sign in at {api_url}/login"


# --- using a station ----------------------------------------------------------------


def queued(out: Json, precedence: str, json_out: bool) -> str:
    return as_json(out) if json_out else f"queued {out['channel']}:{out['seq']} ({precedence})"


def acknowledged(out: Json, channel: str, index: int, operator: str, json_out: bool) -> str:
    return as_json(out) if json_out else f"acknowledged {channel}#{index} as {operator}"


def inbox_line(m: Json) -> str:
    state = m["state"].values()
    mark = (
        "ACK "
        if any(v.get("acknowledged") for v in state)
        else ("OVERDUE " if any(v.get("overdue") for v in state) else "")
    )
    return (
        f"{m['precedence']:<9} {m['channel']}#{m['index']:<5} {ts(m['relay_ms'])} "
        f"{m['sender']:<10} {mark}{m['summary']}"
    )


def more(cursor: str) -> str:
    """The last line of a page that is not the last: how to ask for the next one."""
    return f"(more: --after {cursor})"


def bell(alarm: Json) -> str:
    return f"\a*** {alarm['kind'].upper()}: {alarm['message']} ***"


def message(m: Json, channel: str, index: int, lang: str) -> str:
    """One received message as the reader sees it, in ``lang``."""
    view = m["view"]
    lines = [
        f"{t(lang, 'precedence.' + m['precedence'])} {channel}#{index} from {m['sender']}"
        f", {when(m['relay_ms'], lang)}"
    ]
    if view["kind"] == "form":
        lines.append(view["title"])
        lines.extend(f"  {label}: {value}" for label, value in view["fields"])
        if view.get("note"):
            lines.append(f"  ({view['note']})")
    elif view["kind"] == "text":
        lines.append(f"{t(lang, 'label.original')} [{view['lang']}]: {view['original']}")
        if view.get("translation"):
            lines.append(f"[{view['note']}] {view['translation']}")
        elif view.get("note"):
            lines.append(f"({view['note']})")
    else:
        lines.append(view.get("summary", ""))
    return "\n".join(lines)


def sent_message(out: Json, channel: str, seq: int) -> str:
    """A sent message: its state, then delivery and acknowledgment per party."""
    lines = [
        f"{channel}:{seq} {out['precedence']} {out['state']}"
        + (f" as #{out['index']} at {ts(out['relay_ms'])}" if out["index"] is not None else "")
        + (f": {out['excerpt']}" if out.get("excerpt") else "")
    ]
    for party_name, st in out["recipients"].items():
        d, a = st.get("delivered"), st.get("acknowledged")
        line = f"  {party_name}: delivered " + (
            f"to {d['station']} at {ts(d['relay_ms'])}" if d else "-"
        )
        line += "; acknowledged " + (f"by {a['operator']} at {ts(a['relay_ms'])}" if a else "-")
        if st.get("overdue"):
            line += f"; OVERDUE since {ts(st['due_ms'])} (escalation {st['escalation']})"
        elif st.get("due_ms") and not a:
            line += f"; due {ts(st['due_ms'])}"
        lines.append(line)
    return "\n".join(lines)


def sent_list(page: Json) -> str:
    """A page of sent messages, each with its state per party."""
    lines = [sent_message(item, item["channel"], item["seq"]) for item in page["items"]]
    if page["next"]:
        lines.append(more(page["next"]))
    return "\n".join(lines)


def status(out: Json) -> str:
    """The station's link, outbox, cursors, link board and alarm count."""
    link = out["relay"]
    lines = [
        f"station {out['station']} (roster {out['roster']})",
        f"relay {link['url']}: {'UP' if link['connected'] else 'DOWN'}"
        f", last contact {ts(link['last_contact_ms'])}"
        + (f", rtt {link['rtt_ms']:.1f} ms" if link["rtt_ms"] else "")
        + (f", last error {link['last_error']}" if link["last_error"] else ""),
    ]
    ob = out["outbox"]
    lines.append(
        f"outbox: {ob['queued']} queued, {ob['accepted']} accepted, {ob['refused']} refused"
    )
    for ch, c in out["channels"].items():
        lines.append(
            f"channel {ch}: cursor {c['cursor']}, verified checkpoint {c['verified_size']}"
        )
    for name, path in out.get("relays", {}).items():
        lines.append(
            f"relay {name} {path['url']}: {'UP' if path['connected'] else 'DOWN'}"
            f", last contact {ts(path['last_contact_ms'])}, unsent {path['unsent']}"
        )
    for ch, parties in out.get("links", {}).items():
        for party_name, board in parties.items():
            lines.append(f"link {ch} {party_name}: {_link_line(board)}")
            for relay, path in board.get("paths", {}).items():
                lines.append(f"link {ch} {party_name} via {relay}: {_link_line(path)}")
    lines.append(f"open alarms: {out['open_alarms']}")
    return "\n".join(lines)


def _link_line(board: Json) -> str:
    rtt = f", rtt {board['rtt_ms']:.0f} ms" if board["rtt_ms"] is not None else ""
    return (
        f"{board['state'].upper()}, last contact "
        f"{ts(board['last_contact_ms'])}{rtt}, missed {board['missed']}"
    )


def alarm_line(a: Json) -> str:
    where = f" {a['channel']}#{a['index']}" if a["channel"] else ""
    return f"[{a['id']}] L{a['level']} {a['kind']}{where} {ts(a['created_ms'])}: {a['message']}"


def exported(out: Path, doc: Json) -> str:
    return (
        f"wrote {out}: {len(doc['entries'])} entries, {len(doc['checkpoints'])} "
        f"checkpoints, {len(doc['bodies'])} disclosed bodies"
    )


def forms_list(lang: str) -> str:
    return "\n".join(
        f"{name:<26} v{form.version}  {t(lang, 'form.' + name)}"
        for name, form in sorted(FORMS.items())
    )


# --- verify -------------------------------------------------------------------------


def verify_report(report: Report, json_out: bool) -> str:
    """What `hotline verify` found: the roster and its anchor, counts per party, then
    and the verdict (VERIFIED, CONSISTENT ONLY or every failure)."""
    if json_out:
        return as_json(report.to_dict(), indent=1)
    lines = []
    if report.roster_hash is not None:
        lines.append(f"roster {report.roster}: hash {report.roster_hash}")
        lines.extend(f"  root of {p}: {fp}" for p, fp in report.roots.items())
    lines.append("trust anchor: " + ("; ".join(report.pins) if report.pins else "none given"))
    whose = f" (relay {next(iter(report.relays))}'s log)" if report.relays else ""
    lines += [
        f"channel {report.channel}{whose}: {report.entries} entries, "
        f"{ts(report.first_ms)} .. {ts(report.last_ms)}",
        f"checkpoints: {report.checkpoints} signed by the relay, largest "
        f"{report.largest_checkpoint}",
    ]
    for witness, size in sorted(report.cosigned.items()):
        lines.append(f"  cosigned by {witness} up to size {size}")
    for relay, log in report.relays.items():
        lines.append(
            f"relay {relay}: {log['entries']} entries ({log['envelopes']} distinct), "
            f"{log['checkpoints']} checkpoints up to size {log['largest_checkpoint']} "
            + ("(consistent)" if log["checkpoints_consistent"] else "(NOT consistent)")
            + f"; lacks {log['missing']} of the entries other relays logged; "
            f"{len(log['out_of_order'])} envelope(s) out of their sender's order"
            + ("; FAULTY" if log.get("faulty") else "")
        )
    lines.append(f"key history (key events in the log): {len(report.key_history)}")
    lines.extend(f"  {event}" for event in report.key_history)
    for party_name, r in report.parties.items():
        lines.append(
            f"party {party_name}: sent {r.sent}, "
            + (
                f"delivered {r.delivered}, acknowledged {r.acknowledged}, overdue {r.overdue}"
                if report.receipts_counted
                else "receipts could not be counted (no bodies disclosed)"
            )
        )
    if report.bodies_checked:
        lines.append(f"disclosed bodies checked: {report.bodies_checked}")
    from ..transcript import Verdict

    if report.verdict == Verdict.RELAY_FAULTY:
        lines.append(
            f"RELAY FAULTY: {', '.join(report.faulty)}: {len(report.failures)} problem(s); "
            "the channel's record is intact: every envelope is proven in at least one "
            "relay's signed log"
        )
        lines.extend(f"  {f}" for f in report.failures)
    elif not report.ok:
        intact = ""
        if report.relays and not report.record_intact:
            intact = "; the channel's record is not proven intact"
        elif report.faulty:
            intact = f"; faulty relay(s): {', '.join(report.faulty)}"
        lines.append(f"FAILED: {len(report.failures)} problem(s){intact}")
        lines.extend(f"  {f}" for f in report.failures)
    elif report.anchored:
        lines.append(
            "VERIFIED: every signature, chain, checkpoint and proof holds, under the pinned roster"
        )
    else:
        lines.append(
            "CONSISTENT ONLY: every signature, chain, checkpoint and proof holds under the "
            "file's own roster; consistency only: no trust anchor given (use --roster "
            "ROSTER_FILE, --roster-hash HEX or --root PARTY=FINGERPRINT), and anyone can "
            "make keys for every party and a transcript like this"
        )
    return "\n".join(lines)
