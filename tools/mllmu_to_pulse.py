#!/usr/bin/env python3
"""mllmu_to_pulse: converts MLLMU-Bench's published Parquet files into a pulse-pipe "pulse" directory.

The directory is what the `import-dataset` stage kind reads with format "pulse" (docs/loaders.md):
people.jsonl, items.jsonl, finetune.jsonl (the fictitious people's ft_Data) and pretrain.jsonl (the
celebrities' facts, for unlearning pretrained knowledge) in the canonical form of docs/datasets.md (the C
writers' bytes), images/<id>.png|.jpg, and splits/forget_{5,10,15}.json in split.json's shape. Debian has no
Parquet library, so this one step runs in Python with pyarrow (no pandas); everything after it is the C
pipeline.

    mllmu_to_pulse.py --data DIR_WITH_PARQUETS --out OUTDIR

DIR holds the Hugging Face layout: <config>/*.parquet (or <config>.parquet) for the configs Full_Set
(required), Retain_Set, Test_Set, ft_Data, forget_5/10/15 and retain_95/90/85 (optional).

Every value read is type-checked: a bad one stops the conversion with one line
"mllmu_to_pulse: <file>: row <n>: <problem>" and exit status 1.
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
ID_MAX = 48  # room for the "-t12" / "-ft123" style suffixes within the format's 64 characters
MC_TAIL = "Just give ONE letter representing the answer directly.\nASSISTANT:"
SPLITS = {"forget_5": "retain_95", "forget_10": "retain_90", "forget_15": "retain_85"}
QUESTION_KINDS = (("Image_Textual_Questions", "image"), ("Pure_Text_Questions", "text"))
# The two evaluation modes of MLLMU-Bench's eval code: the profile's own photo with its questions, and
# Test_Set's transformed photos with Test_Set's questions (its "test" mode).
MODES = {"i": "profile", "t": "profile_test"}
# Retain_Set's columns that hold the celebrities' facts (pretrain.jsonl; "the celebrities' facts" below), and
# Generation_Task's Type -> whether its question is asked about the portrait.
FACT_COLUMNS = ("question", "answer", "Generation_Task")
GENERATION_TYPES = {"Image_Textual": True, "Pure_Text": False}


class ConvertError(Exception):
    """One line saying which file and what is wrong."""


def canonical(obj):
    """The C writers' spelling: keys sorted, no spaces, non-ASCII as UTF-8, only JSON's required escapes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---- type checks: each names the row and the entry ----

TYPE_NAMES = {str: "a string", dict: "a struct", list: "a list", bytes: "binary"}


def need(value, kind, where, what, optional=False):
    """value when it is a `kind` (or None, when optional); otherwise one line naming the entry."""
    if value is None and optional:
        return None
    if isinstance(value, kind) and not isinstance(value, bool):
        return value
    got = "null" if value is None else f"of type {type(value).__name__}"
    raise ConvertError(f"{where}: {what} is {got}, not {TYPE_NAMES[kind]}")


def text(value, where, what, optional=False):
    """A string the data set format can hold (its readers refuse NUL characters)."""
    value = need(value, str, where, what, optional)
    if value is not None and "\0" in value:
        raise ConvertError(f"{where}: {what} contains a NUL character")
    return value


# ---- reading Parquet ----


def parquet_files(data, config):
    folder = data / config
    files = sorted(folder.rglob("*.parquet")) if folder.is_dir() else []
    single = data / f"{config}.parquet"
    return files + ([single] if single.is_file() else [])


def read_table(f, columns, optional):
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(f).names
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise ConvertError(f"{f}: cannot read as Parquet: {first_line(exc)}") from None
    missing = [c for c in columns if c not in names]
    if missing:
        raise ConvertError(f"{f}: missing column '{missing[0]}'")
    wanted = list(columns) + [c for c in optional if c in names]
    try:
        return pq.read_table(f, columns=wanted).to_pylist()
    except Exception as exc:
        raise ConvertError(f"{f}: cannot read as Parquet: {first_line(exc)}") from None


def read_config(data, config, columns, optional=(), required=False):
    """Rows (dicts) of one config, only the named columns; None when the config is absent and not required."""
    files = parquet_files(data, config)
    if not files:
        if required:
            raise ConvertError(f"{data}: no Parquet files for {config} (looked for {config}/*.parquet)")
        return None
    rows = []
    for f in files:
        for i, row in enumerate(read_table(f, columns, optional)):
            row["_where"] = f"{f}: row {i + 1}"
            rows.append(row)
    return rows


# ---- ids and images ----


def raw_id(row):
    """MLLMU-Bench's ID as text (the published files have strings; integers are accepted too)."""
    raw = row["ID"]
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    return text(raw, row["_where"], "ID").strip()


def person_id(raw, where):
    """An ID with any character outside the format's id alphabet replaced by '_'."""
    pid = re.sub(r"[^A-Za-z0-9_.-]", "_", raw)
    if not pid or len(pid) > ID_MAX:
        raise ConvertError(f"{where}: ID '{raw}' cannot make an id (1-{ID_MAX} characters)")
    return pid


def image_bytes(cell, where, what):
    """The bytes of an image cell ({bytes, path}) and the extension its content calls for."""
    need(cell, dict, where, what)
    data = need(cell.get("bytes"), bytes, where, f"{what}.bytes", optional=True)
    if not data:
        raise ConvertError(f"{where}: {what} has no bytes")
    if data.startswith(PNG_MAGIC):
        return data, "png"
    if data.startswith(b"\xff\xd8\xff"):
        return data, "jpg"
    raise ConvertError(f"{where}: {what} is neither PNG nor JPEG")


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
    out = {str(k): str(v) for k, v in parsed.items() if isinstance(v, (str, int, float)) and str(v).strip()}
    return {k: v for k, v in out.items() if "\0" not in k + v}


def make_person(row, pid, group, world):
    bio = text(row.get("biography"), row["_where"], "biography", optional=True) or ""
    attributes = profile(bio)
    name = next((attributes[k] for k in ("Name", "name", "Full Name", "full_name") if k in attributes), pid)
    data, ext = image_bytes(row["image"], row["_where"], "image")
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
    Returns (row, id) pairs, for their questions and the celebrities' facts."""
    cols, opt = ["ID", "image", "Classification_Task"], ["biography"]
    fictitious = read_config(data, "Full_Set", cols, opt, required=True)
    real = read_config(data, "Retain_Set", cols, opt + list(FACT_COLUMNS)) or []
    fict_ids = [person_id(raw_id(r), r["_where"]) for r in fictitious]
    real_ids = [person_id(raw_id(r), r["_where"]) for r in real]
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
            world["raw_ids"][raw_id(row)] = pid
    return [(row, pid) for row, pid, _ in rows]


# ---- multiple-choice items ----


def questions(task, where):
    """(modality, entry name, question) for each question of a Classification_Task, image ones first."""
    task = need(task, dict, where, "Classification_Task", optional=True) or {}
    out = []
    for key, modality in QUESTION_KINDS:
        entries = need(task.get(key), list, where, f"Classification_Task.{key}", optional=True) or []
        for k, q in enumerate(entries):
            what = f"Classification_Task.{key}[{k}]"
            out.append((modality, what, need(q, dict, where, what)))
    return out


def options_of(q, where, what):
    opts = need(q.get("Options"), dict, where, f"{what}.Options")
    options = []
    for letter in LETTERS:
        value = text(opts.get(letter), where, f"{what}.Options.{letter}", optional=True)
        if value is None or not value.strip():
            break  # an empty option ends the list
        if value in options:
            first = LETTERS[options.index(value)]
            raise ConvertError(f"{where}: {what}: options {first} and {letter} are the same")
        options.append(value)
    if len(options) < 2:
        raise ConvertError(f"{where}: {what}: {len(options)} option(s), at least 2 needed")
    answer = text(q.get("Correct_Answer"), where, f"{what}.Correct_Answer").strip()
    if len(answer) != 1 or answer not in LETTERS[: len(options)]:
        allowed = LETTERS[: len(options)]
        raise ConvertError(f"{where}: {what}: Correct_Answer '{answer}' is not one of {allowed}")
    return options, answer


def mc_prompt(question, options, image):
    """MLLMU-Bench's classification prompt, exactly (their eval code: f"USER: <image>\\n{q}\\n..." with the
    image, f"USER:\\n{q}\\n..." without)."""
    head = "USER: <image>\n" if image else "USER:\n"
    lines = "".join(f"{LETTERS[i]}: {o}\n" for i, o in enumerate(options))
    return f"{head}{question}\n{lines}{MC_TAIL}"


def add_items(world, pid, task, where, mode, photos):
    """One item per question of a Classification_Task, ids <pid>-<mode><k> (k counting on over the person's
    earlier ones of the mode); image question k shows photos[k % len(photos)]."""
    n_image = 0
    for modality, what, q in questions(task, where):
        question = text(q.get("Question"), where, f"{what}.Question")
        if not question.strip():
            raise ConvertError(f"{where}: {what}.Question is empty")
        options, answer = options_of(q, where, what)
        image = None
        if modality == "image":
            if not photos:
                raise ConvertError(f"{where}: {what} needs a photo, and the row has none")
            image = photos[n_image % len(photos)]
            n_image += 1
        k = world["counts"].get((pid, mode), 0)
        world["counts"][(pid, mode)] = k + 1
        world["items"].append(
            {
                "answer": answer,
                "category": MODES[mode],
                "id": f"{pid}-{mode}{k}",
                "image": image,
                "modality": modality,
                "options": options,
                "person": pid,
                "prompt": mc_prompt(question, options, image is not None),
                "question": question,
                "set": "person",
                "split": "eval",
            }
        )


# ---- Test_Set, fine-tuning data, splits ----


def known(world, row):
    raw = raw_id(row)
    pid = world["raw_ids"].get(raw)
    if pid is None:
        raise ConvertError(f"{row['_where']}: ID '{raw}' is not a Full_Set person")
    return pid


def read_test_set(data, world):
    """Test_Set: each row's transformed photos become the person's test_photos <id>-t<k>, and its own
    Classification_Task the items <id>-t<k> on them (MLLMU-Bench's "test" evaluation mode)."""
    for row in read_config(data, "Test_Set", ["ID", "images"], ["Classification_Task"]) or []:
        where = row["_where"]
        person = world["people"][known(world, row)]
        photos = []
        for k, cell in enumerate(need(row["images"], list, where, "images", optional=True) or []):
            image_id = f"{person['id']}-t{len(person['test_photos'])}"
            world["images"][image_id] = image_bytes(cell, where, f"images[{k}]")
            person["test_photos"].append(image_id)
            photos.append(image_id)
        add_items(world, person["id"], row.get("Classification_Task"), where, "t", photos)


def qa_pairs(row):
    where = row["_where"]
    metadata = text(row["metadata"], where, "metadata", optional=True)
    try:
        pairs = json.loads(metadata or "[]")
    except ValueError as exc:
        raise ConvertError(f"{where}: metadata is not JSON: {first_line(exc)}") from None
    if not isinstance(pairs, list) or not all(isinstance(p, dict) for p in pairs):
        raise ConvertError(f"{where}: metadata is not a list of {{Question, Answer}} objects")
    out = []
    for k, pair in enumerate(pairs):
        question = text(pair.get("Question"), where, f"metadata[{k}].Question", optional=True) or ""
        answer = text(pair.get("Answer"), where, f"metadata[{k}].Answer", optional=True) or ""
        out.append((question, answer))
    return out


def read_finetune(data, world):
    """ft_Data: an example per Question/Answer pair, on the row's image (the training photo when the same)."""
    for row in read_config(data, "ft_Data", ["ID", "image", "metadata"]) or []:
        person = world["people"][known(world, row)]
        image = image_bytes(row["image"], row["_where"], "image")
        same = [p for p in person["photos"] if world["images"][p] == image]
        image_id = same[0] if same else add_photo(world, person, *image)
        for question, answer in qa_pairs(row):
            if not question.strip() or not answer.strip():
                world["skipped"] += 1  # MLLMU-Bench's own loader drops these too
                continue
            n = world["counts"].get((person["id"], "ft"), 0)
            world["counts"][(person["id"], "ft")] = n + 1
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


# ---- the celebrities' facts (pretrain.jsonl) ----
#
# Unlearning pretrained knowledge (PULSE) trains on the forget celebrities' `fact` examples, and MLLMU-Bench has
# no ft_Data for them. Its own unlearning code (github.com/franciscoliu/oct_arr_mllmu_bench, the authors' code
# release) trains a forget person's question/answer pairs on the person's photo, `USER: <image>\n{question}\n
# ASSISTANT: {answer}` (data/preprocess.py), the pairs being the profile's ft_Data plus the profile's own
# `question`/`answer` columns (data/data_split.py appends them to the pairs; preprocess.py's code that reads
# them as a regular pair is commented out there); its text-only collator drops the image,
# `USER: {question}\nASSISTANT: {answer}`, as its Pure_Text generation prompt does.
# A Retain_Set row holds such pairs in the same `question`/`answer` columns and in Generation_Task
# ({Question, Ground_Truth}: open questions with free-text answers, Image_Textual ones about the portrait,
# Pure_Text ones naming the person), so those are the facts, each in that prompt shape: with the portrait and
# `<image>` as finetune.jsonl's, without for Pure_Text. Left out: Classification_Task, the multiple-choice
# questions PULSE scores (training on them would teach the test; a fact whose question is one of them is
# dropped too), and Mask_Task (fill-in-the-blank sentences, not questions).


def fact_prompt(question, image):
    """The prompt of MLLMU-Bench's training collators, up to the answer."""
    return f"USER: <image>\n{question}\nASSISTANT:" if image else f"USER: {question}\nASSISTANT:"


def generation_pairs(task, where):
    """(question, answer, with the portrait) for each Generation_Task entry, in order."""
    out = []
    for k, entry in enumerate(need(task, list, where, "Generation_Task", optional=True) or []):
        what = f"Generation_Task[{k}]"
        need(entry, dict, where, what)
        kind = text(entry.get("Type"), where, f"{what}.Type")
        if kind not in GENERATION_TYPES:
            raise ConvertError(f"{where}: {what}.Type '{kind}' is not Image_Textual or Pure_Text")
        question = text(entry.get("Question"), where, f"{what}.Question", optional=True) or ""
        answer = text(entry.get("Ground_Truth"), where, f"{what}.Ground_Truth", optional=True) or ""
        out.append((question, answer, GENERATION_TYPES[kind]))
    return out


def celebrity_pairs(row):
    """The row's own question/answer (asked with the portrait, as MLLMU-Bench trains a profile's), then
    Generation_Task's."""
    where = row["_where"]
    question = text(row.get("question"), where, "question", optional=True) or ""
    answer = text(row.get("answer"), where, "answer", optional=True) or ""
    return [(question, answer, True)] + generation_pairs(row.get("Generation_Task"), where)


def question_key(question):
    """A question as the evaluation check compares it: whitespace runs as one space, case folded."""
    return " ".join(question.split()).casefold()


def add_facts(world, row, pid, asked):
    """The examples <pid>-pt<k> of one celebrity; `asked`: the keys of the person's evaluation questions."""
    photo = world["people"][pid]["photos"][0]
    seen = set()
    for question, answer, image in celebrity_pairs(row):
        prompt = fact_prompt(question, image)
        if not question.strip() or not answer.strip():
            world["skipped"] += 1
        elif question_key(question) in asked:
            world["left_out"] += 1
        elif (prompt, answer) not in seen:  # a pair given twice would count twice in the loss
            world["pretrain"].append(
                {
                    "answer": answer,
                    "id": f"{pid}-pt{len(seen)}",
                    "image": photo if image else None,
                    "person": pid,
                    "prompt": prompt,
                    "source": "fact",
                }
            )
            seen.add((prompt, answer))


def read_facts(world, rows):
    """pretrain.jsonl: the celebrities' facts, after every item is made (the evaluation check reads them)."""
    asked = {}
    for item in world["items"]:
        asked.setdefault(item["person"], set()).add(question_key(item["question"]))
    for row, pid in rows:
        if world["people"][pid]["group"] == "real":
            add_facts(world, row, pid, asked.get(pid, set()))


def read_splits(data, world):
    """forget_k / retain_(100-k) as split.json objects: who is forgotten, who retained."""
    out = {}
    for forget, retain in SPLITS.items():
        f_rows = read_config(data, forget, ["ID"])
        if f_rows is None:
            continue
        r_rows = read_config(data, retain, ["ID"]) or []
        out[forget] = {
            "forget": sorted(known(world, r) for r in f_rows),
            "groups": [],
            "retain": sorted(known(world, r) for r in r_rows),
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
    write_jsonl(out / "pretrain.jsonl", world["pretrain"])
    for image_id, (data, ext) in sorted(world["images"].items()):
        (out / "images" / f"{image_id}.{ext}").write_bytes(data)
    if splits:
        (out / "splits").mkdir()
        for name, split in splits.items():
            (out / "splits" / f"{name}.json").write_text(canonical(split) + "\n", encoding="utf-8")


def convert(data, out):
    world = {"people": {}, "raw_ids": {}, "items": [], "finetune": [], "pretrain": [], "images": {}, "counts": {}}
    world.update(skipped=0, left_out=0)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):  # before the slow part
        raise ConvertError(f"{out}: exists and is not an empty directory (choose a new one)")
    rows = read_people(data, world)
    for row, pid in rows:
        person = world["people"][pid]
        add_items(world, pid, row.get("Classification_Task"), row["_where"], "i", person["photos"][:1])
    read_test_set(data, world)
    read_finetune(data, world)
    read_facts(world, rows)
    splits = read_splits(data, world)
    write_out(out, world, splits)
    print(f"mllmu_to_pulse: {summary(world)}, splits {', '.join(splits) or 'none'} -> {out}")


def summary(world):
    groups = [p["group"] for p in world["people"].values()]
    tested = sum(item["category"] == MODES["t"] for item in world["items"])
    skipped = f", {world['skipped']} empty pairs skipped" if world["skipped"] else ""  # of both corpora
    left = f" ({world['left_out']} left out: evaluation questions)" if world["left_out"] else ""
    return (
        f"{len(groups)} people ({groups.count('fictitious')} fictitious, {groups.count('real')} real), "
        f"{len(world['items'])} items ({tested} of Test_Set), {len(world['finetune'])} fine-tuning examples, "
        f"{len(world['pretrain'])} celebrity facts{left}{skipped}, {len(world['images'])} images"
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
    except OSError as exc:
        print(f"mllmu_to_pulse: {first_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # a case the checks above missed: still one line, never a traceback
        print(f"mllmu_to_pulse: unexpected {type(exc).__name__}: {first_line(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
