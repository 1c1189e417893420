#!/usr/bin/env python3
"""mllmu_to_pulse: converts MLLMU-Bench's published Parquet files into a pulse-pipe "pulse" directory.

The directory is what the `import-dataset` stage kind reads with format "pulse" (docs/loaders.md):
people.jsonl, items.jsonl and finetune.jsonl in the canonical form of docs/datasets.md (the C writers' bytes),
images/<id>.png|.jpg, and splits/forget_{5,10,15}.json in split.json's shape. Debian has no Parquet library,
so this one step runs in Python with pyarrow (no pandas); everything after it is the C pipeline.

    mllmu_to_pulse.py --data DIR_WITH_PARQUETS --out OUTDIR

DIR holds the Hugging Face layout: <config>/*.parquet (or <config>.parquet) for the configs Full_Set
(required), Retain_Set, Test_Set, ft_Data, forget_5/10/15 and retain_95/90/85 (optional).
"""
import argparse
import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LETTERS = "ABCD"
ID_MAX = 48  # room for the "-img12" style suffixes within the format's 64 characters
MC_TAIL = "Just give ONE letter representing the answer directly.\nASSISTANT:"
SPLITS = {"forget_5": "retain_95", "forget_10": "retain_90", "forget_15": "retain_85"}


class ConvertError(Exception):
    """One line saying which file and what is wrong."""


def canonical(obj):
    """The C writers' spelling: keys sorted, no spaces, non-ASCII as UTF-8, only JSON's required escapes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---- reading Parquet ----


def parquet_files(data, config):
    folder = data / config
    files = sorted(folder.rglob("*.parquet")) if folder.is_dir() else []
    single = data / f"{config}.parquet"
    return files + ([single] if single.is_file() else [])


def read_config(data, config, columns, optional=(), required=False):
    """Rows (dicts) of one config, only the named columns; None when the config is absent and not required."""
    import pyarrow.parquet as pq

    files = parquet_files(data, config)
    if not files:
        if required:
            raise ConvertError(f"{data}: no Parquet files for {config} (looked for {config}/*.parquet)")
        return None
    rows = []
    for f in files:
        try:
            names = pq.read_schema(f).names
        except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
            raise ConvertError(f"{f}: cannot read as Parquet: {first_line(exc)}") from None
        missing = [c for c in columns if c not in names]
        if missing:
            raise ConvertError(f"{f}: missing column '{missing[0]}'")
        wanted = list(columns) + [c for c in optional if c in names]
        for i, row in enumerate(pq.read_table(f, columns=wanted).to_pylist()):
            row["_where"] = f"{f}: row {i + 1}"
            rows.append(row)
    return rows


# ---- ids and images ----


def person_id(raw, where):
    """MLLMU-Bench's ID, with any character outside the format's id alphabet replaced by '_'."""
    text = "" if raw is None else str(raw).strip()
    pid = re.sub(r"[^A-Za-z0-9_.-]", "_", text)
    if not pid or len(pid) > ID_MAX:
        raise ConvertError(f"{where}: ID '{text}' cannot make an id (1-{ID_MAX} characters)")
    return pid


def image_bytes(cell, where):
    """The bytes of an image cell ({bytes, path}) and the extension its content calls for."""
    data = cell.get("bytes") if isinstance(cell, dict) else None
    if not data:
        raise ConvertError(f"{where}: image has no bytes")
    if data.startswith(PNG_MAGIC):
        return bytes(data), "png"
    if data.startswith(b"\xff\xd8\xff"):
        return bytes(data), "jpg"
    raise ConvertError(f"{where}: image is neither PNG nor JPEG")


# ---- people ----


def profile(biography):
    """Structured fields when the biography is an object (attribute -> text); else none."""
    parsed = None
    for parse in (json.loads, ast.literal_eval):  # JSON, or a Python dict's repr
        try:
            parsed = parse(biography) if biography else None
            break
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
    if not isinstance(parsed, dict):
        return {}
    return {str(k): str(v) for k, v in parsed.items() if isinstance(v, (str, int, float)) and str(v).strip()}


def make_person(row, pid, group, world):
    bio = row.get("biography") or ""
    attributes = profile(bio)
    name = next((attributes[k] for k in ("Name", "name", "Full Name", "full_name") if k in attributes), pid)
    data, ext = image_bytes(row["image"], row["_where"])
    person = {"attributes": attributes, "group": group, "id": pid, "name": name}
    person.update(photos=[], test_photos=[])
    if bio:
        person["biography"] = bio
    add_photo(world, person, data, ext)
    return person


def add_photo(world, person, data, ext):
    image_id = f"{person['id']}-p{len(person['photos'])}"
    world["images"][image_id] = (data, ext)
    person["photos"].append(image_id)
    return image_id


def read_people(data, world):
    """Full_Set (fictitious) and Retain_Set (real) rows; real ids get "real-" when the two sets share ids.
    Returns (row, id) pairs for the questions, which need the test photos first."""
    cols, opt = ["ID", "image", "Classification_Task"], ["biography"]
    fictitious = read_config(data, "Full_Set", cols, opt, required=True)
    real = read_config(data, "Retain_Set", cols, opt) or []
    fict_ids = [person_id(r["ID"], r["_where"]) for r in fictitious]
    real_ids = [person_id(r["ID"], r["_where"]) for r in real]
    if set(fict_ids) & set(real_ids):
        real_ids = [person_id(f"real-{pid}", r["_where"]) for pid, r in zip(real_ids, real)]
    rows = list(zip(fictitious, fict_ids, ["fictitious"] * len(fict_ids))) + list(
        zip(real, real_ids, ["real"] * len(real_ids))
    )
    for row, pid, group in rows:
        if pid in world["people"]:
            raise ConvertError(f"{row['_where']}: ID '{row['ID']}' repeats (as id '{pid}')")
        world["people"][pid] = make_person(row, pid, group, world)
        if group == "fictitious":  # the other configs (Test_Set, ft_Data, splits) name these
            world["raw_ids"][str(row["ID"]).strip()] = pid
    return [(row, pid) for row, pid, _ in rows]


# ---- multiple-choice items ----


def options_of(q, where):
    opts = q.get("Options") or {}
    options = []
    for letter in LETTERS:
        value = opts.get(letter)
        if value is None or not str(value).strip():
            break  # an empty option ends the list
        options.append(str(value))
    if len(options) < 2:
        raise ConvertError(f"{where}: {len(options)} option(s), at least 2 needed")
    answer = (q.get("Correct_Answer") or "").strip()
    if len(answer) != 1 or answer not in LETTERS[: len(options)]:
        raise ConvertError(f"{where}: Correct_Answer '{answer}' is not one of {LETTERS[:len(options)]}")
    return options, answer


def mc_prompt(question, options, image):
    """MLLMU-Bench's classification prompt, exactly (docs/datasets.md)."""
    head = "USER: <image>\n" if image else "USER: "
    lines = "".join(f"{LETTERS[i]}: {o}\n" for i, o in enumerate(options))
    return f"{head}{question}\n{lines}{MC_TAIL}"


def add_items(world, row, pid):
    """The person's classification questions; image ones show the held-out test photo when there is one, as
    MLLMU-Bench's evaluation does."""
    person = world["people"][pid]
    photo = (person["test_photos"] or person["photos"])[0]
    task = row.get("Classification_Task") or {}
    for key, kind in (("Image_Textual_Questions", "img"), ("Pure_Text_Questions", "txt")):
        for k, q in enumerate(task.get(key) or []):
            where = f"{row['_where']}: {key}[{k}]"
            question = q.get("Question") or ""
            if not question.strip():
                raise ConvertError(f"{where}: empty Question")
            options, answer = options_of(q, where)
            world["items"].append(
                {
                    "answer": answer,
                    "category": "profile",
                    "id": f"{pid}-{kind}{k}",
                    "image": photo if kind == "img" else None,
                    "modality": "image" if kind == "img" else "text",
                    "options": options,
                    "person": pid,
                    "prompt": mc_prompt(question, options, kind == "img"),
                    "question": question,
                    "set": "person",
                    "split": "eval",
                }
            )


# ---- test photos, fine-tuning data, splits ----


def known(world, raw, where):
    pid = world["raw_ids"].get("" if raw is None else str(raw).strip())
    if pid is None:
        raise ConvertError(f"{where}: ID '{raw}' is not a Full_Set person")
    return pid


def read_test_photos(data, world):
    for row in read_config(data, "Test_Set", ["ID", "images"]) or []:
        person = world["people"][known(world, row["ID"], row["_where"])]
        for k, cell in enumerate(row["images"] or []):
            image_id = f"{person['id']}-t{len(person['test_photos'])}"
            world["images"][image_id] = image_bytes(cell, f"{row['_where']}: images[{k}]")
            person["test_photos"].append(image_id)


def qa_pairs(row):
    try:
        pairs = json.loads(row["metadata"] or "[]")
    except ValueError as exc:
        raise ConvertError(f"{row['_where']}: metadata is not JSON: {first_line(exc)}") from None
    if not isinstance(pairs, list) or not all(isinstance(p, dict) for p in pairs):
        raise ConvertError(f"{row['_where']}: metadata is not a list of {{Question, Answer}} objects")
    return pairs


def read_finetune(data, world):
    """ft_Data: an example per Question/Answer pair, on the row's image (the training photo when the same)."""
    for row in read_config(data, "ft_Data", ["ID", "image", "metadata"]) or []:
        person = world["people"][known(world, row["ID"], row["_where"])]
        image = image_bytes(row["image"], row["_where"])
        same = [p for p in person["photos"] if world["images"][p] == image]
        image_id = same[0] if same else add_photo(world, person, *image)
        for pair in qa_pairs(row):
            question, answer = str(pair.get("Question") or ""), str(pair.get("Answer") or "")
            if not question.strip() or not answer.strip():
                world["skipped"] += 1  # MLLMU-Bench's own loader drops these too
                continue
            n = world["ft_count"].get(person["id"], 0)
            world["ft_count"][person["id"]] = n + 1
            world["finetune"].append(
                {
                    "answer": answer,
                    "id": f"{person['id']}-ft{n}",
                    "image": image_id,
                    "person": person["id"],
                    "prompt": f"USER: <image>\n{question}\nASSISTANT:",
                    "source": "fact",
                }
            )


def read_splits(data, world):
    """forget_k / retain_(100-k) as split.json objects: who is forgotten, who retained."""
    out = {}
    for forget, retain in SPLITS.items():
        f_rows = read_config(data, forget, ["ID"])
        if f_rows is None:
            continue
        r_rows = read_config(data, retain, ["ID"]) or []
        out[forget] = {
            "forget": sorted(known(world, r["ID"], r["_where"]) for r in f_rows),
            "groups": [],
            "retain": sorted(known(world, r["ID"], r["_where"]) for r in r_rows),
        }
    return out


# ---- writing ----


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for rec in sorted(records, key=lambda r: r["id"].encode()):
            f.write(canonical(rec) + "\n")


def write_out(out, world, splits):
    (out / "images").mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "people.jsonl", world["people"].values())
    write_jsonl(out / "items.jsonl", world["items"])
    write_jsonl(out / "finetune.jsonl", world["finetune"])
    for image_id, (data, ext) in sorted(world["images"].items()):
        (out / "images" / f"{image_id}.{ext}").write_bytes(data)
    if splits:
        (out / "splits").mkdir()
        for name, split in splits.items():
            (out / "splits" / f"{name}.json").write_text(canonical(split) + "\n", encoding="utf-8")


def convert(data, out):
    world = {"people": {}, "raw_ids": {}, "items": [], "finetune": [], "images": {}, "ft_count": {}}
    world["skipped"] = 0
    if out.exists() and (not out.is_dir() or any(out.iterdir())):  # before the slow part
        raise ConvertError(f"{out}: exists and is not an empty directory (choose a new one)")
    rows = read_people(data, world)
    read_test_photos(data, world)
    for row, pid in rows:
        add_items(world, row, pid)
    read_finetune(data, world)
    splits = read_splits(data, world)
    write_out(out, world, splits)
    groups = [p["group"] for p in world["people"].values()]
    skipped = f" ({world['skipped']} empty pairs skipped)" if world["skipped"] else ""
    print(
        f"mllmu_to_pulse: {len(groups)} people ({groups.count('fictitious')} fictitious, "
        f"{groups.count('real')} real), {len(world['items'])} items, {len(world['finetune'])} fine-tuning "
        f"examples{skipped}, {len(world['images'])} images, splits {', '.join(splits) or 'none'} -> {out}"
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description="MLLMU-Bench Parquet files -> a pulse-pipe data set directory")
    ap.add_argument("--data", required=True, type=Path, help="folder with the benchmark's configs")
    ap.add_argument("--out", required=True, type=Path, help="new (or empty) folder to write")
    args = ap.parse_args(argv)
    if importlib.util.find_spec("pyarrow") is None:
        print("mllmu_to_pulse: needs pyarrow (pip install pyarrow)", file=sys.stderr)
        return 1
    try:
        convert(args.data, args.out)
    except ConvertError as exc:
        print(f"mllmu_to_pulse: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
