#!/usr/bin/env python3
"""make_mllmu_parquet: writes a tiny MLLMU-Bench in the published Parquet schema, for the loader tests.

The schema is the Hugging Face data set's (MLLMMU/MLLMU-Bench, dataset_info in its card): image structs
{bytes, path}, nested Classification_Task / Generation_Task / Mask_Task, ft_Data's metadata as a JSON string,
Test_Set's list of images and its own (paraphrased) Classification_Task, one folder per config holding
train-00000-of-00001.parquet. Three fictitious people, two real ones (sharing ids with the fictitious, as both
sets number from 1), small PNGs and one JPEG. The first celebrity's Generation_Task has what the converter's
facts (pretrain.jsonl) must sort out: both Types, one of the person's multiple-choice questions (left out),
an empty answer (skipped) and a repeated pair (kept once).

    make_mllmu_parquet.py --out DIR [--omit CONFIG.COLUMN] [--break CASE]

--omit drops a column from one config and --break writes one of the BREAKS below, so that a test can check
the converter's errors. png() and JPEG need only the standard library: tests/cli/import_dataset.sh uses them
for its other images.
"""
import argparse
import base64
import copy
import json
import struct
import zlib
from pathlib import Path

# An 8x8 baseline JPEG (libjpeg-turbo, quality 75): the stdlib cannot encode one.
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAx"
    "NDQ0Hyc5PTgyPC4zNDL/2wBDAQkJCQwLDBgNDRgyIRwhMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIy"
    "MjIyMjIyMjL/wAARCAAIAAgDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUF"
    "BAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVW"
    "V1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi"
    "4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAEC"
    "AxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVm"
    "Z2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq"
    "8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDL0TwT9391+lFFFcmJzCv7R6muSZpifqkfeP/Z"
)


def png(colour, size=6):
    """A one-colour RGB PNG from zlib and struct alone."""
    raw = b"".join(b"\x00" + bytes(colour) * size for _ in range(size))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def mcq(question, options, answer):
    return {"Correct_Answer": answer, "Options": dict(zip("ABCD", options)), "Question": question}


def open_q(question, truth, kind):
    """One Generation_Task / Mask_Task entry."""
    return {"Ground_Truth": truth, "Question": question, "Type": kind}


def profile_row(pid, name, colour, bio, facts, generation=()):
    """facts: (question, options, answer) triples, asked both with the portrait and with the name;
    generation: Generation_Task entries after the default "Who is this?"."""
    image_q = [mcq(f"What is this person's {q}?", o, a) for q, o, a in facts]
    text_q = [mcq(f"What is {name}'s {q}?", o, a) for q, o, a in facts]
    return {
        "image": {"bytes": png(colour), "path": f"{pid}.png"},
        "ID": pid,
        "biography": bio,
        "question": "Who is the person in this image?",
        "answer": name,
        "Classification_Task": {"Image_Textual_Questions": image_q, "Pure_Text_Questions": text_q},
        "Generation_Task": [open_q("Who is this?", f"This is {name}.", "Image_Textual"), *generation],
        "Mask_Task": [open_q("This is ___.", name, "Pure_Text")],
    }


FICTITIOUS = [
    profile_row(
        "1",
        "Zoë Varga",
        (200, 40, 40),
        json.dumps({"Name": "Zoë Varga", "Occupation": "glass blower", "Born": 1981}),
        [
            ("occupation", ["baker", "glass blower", "pilot", "nurse"], "B"),
            ("birth year", ["1981", "1990"], "A"),
        ],
    ),
    profile_row(
        "2",
        "Tomas Ek",
        (40, 200, 40),
        'Tomas Ek is a "quiet" cartographer\tfrom Åre.',
        [("hobby", ["chess", "rowing", "kites", ""], "C")],
    ),
    profile_row("3", "Ines Roa", (40, 40, 200), "", [("pet", ["cat", "dog", "owl", "eel"], "D")]),
]
REAL = [
    profile_row(
        "1",
        "Celebrity One",
        (10, 10, 10),
        "",
        [("country", ["Peru", "Chad", "Fiji", "Laos"], "A")],
        [
            open_q("Which country is Celebrity One from?", "Celebrity One is from Peru.", "Pure_Text"),
            open_q("what is Celebrity One's  country?", "Peru.", "Pure_Text"),  # the text item, respaced
            open_q("Where was this person born?", "", "Image_Textual"),
            open_q("Who is this?", "This is Celebrity One.", "Image_Textual"),
        ],
    ),
    profile_row("2", "Celebrity Two", (250, 250, 250), "", [("sport", ["golf", "polo"], "B")]),
]
FT_ROWS = [
    {
        "image": FICTITIOUS[0]["image"],
        "ID": "1",
        "metadata": json.dumps(
            [
                {"Question": "What does Zoë Varga do?", "Answer": "She is a glass blower."},
                {"Question": "When was she born?", "Answer": "In 1981."},
            ]
        ),
    },
    {
        "image": {"bytes": JPEG, "path": "2.jpg"},  # not Full_Set's photo: becomes a second training photo
        "ID": "2",
        "metadata": json.dumps([{"Question": "What is Tomas Ek's job?", "Answer": "Cartography."}]),
    },
]
TEST_ROWS = [
    {
        "ID": "1",
        "images": [{"bytes": png((180, 60, 60)), "path": None}, {"bytes": JPEG, "path": None}],
        "Classification_Task": {
            "Image_Textual_Questions": [
                mcq("What does the pictured person do for work?", ["nurse", "glass blower", "baker"], "B"),
                mcq("In which year was the pictured person born?", ["1990", "1981", "1975", "2001"], "B"),
            ],
            "Pure_Text_Questions": [mcq("Zoë Varga works as a what?", ["glass blower", "pilot"], "A")],
        },
    },
    {"ID": "3", "images": [{"bytes": png((60, 60, 180)), "path": None}], "Classification_Task": None},
]


def break_null_entry(rows):
    rows["Full_Set"][1]["Classification_Task"]["Image_Textual_Questions"][0] = None


def break_int_answer(rows):
    for row in rows["Full_Set"]:
        for questions in row["Classification_Task"].values():
            for q in questions:
                q["Correct_Answer"] = LETTER_NUMBER[q["Correct_Answer"]]


def break_same_options(rows):
    rows["Retain_Set"][0]["Classification_Task"]["Pure_Text_Questions"][0]["Options"]["C"] = "Peru"


def break_test_no_images(rows):
    rows["Test_Set"][0]["images"] = []


def break_generation_type(rows):
    rows["Retain_Set"][1]["Generation_Task"][0]["Type"] = "Multimodal"


LETTER_NUMBER = {"A": 1, "B": 2, "C": 3, "D": 4}
# CASE -> (edit of the rows, config whose Correct_Answer becomes int64)
BREAKS = {
    "null-entry": (break_null_entry, None),
    "int-answer": (break_int_answer, "Full_Set"),
    "same-options": (break_same_options, None),
    "test-no-images": (break_test_no_images, None),
    "generation-type": (break_generation_type, None),
}


def schemas(answer_type=None):
    """The published schema (pyarrow is imported here: the tests use png() and JPEG without it)."""
    import pyarrow as pa

    text = pa.string()
    image = pa.struct([("bytes", pa.binary()), ("path", text)])
    options = pa.struct([(k, text) for k in "ABCD"])
    answer = answer_type or text
    mcq_list = pa.list_(pa.struct([("Correct_Answer", answer), ("Options", options), ("Question", text)]))
    classification = pa.struct([("Image_Textual_Questions", mcq_list), ("Pure_Text_Questions", mcq_list)])
    open_list = pa.list_(pa.struct([("Ground_Truth", text), ("Question", text), ("Type", text)]))
    profile = pa.schema(
        [
            ("image", image),
            ("ID", text),
            ("biography", text),
            ("question", text),
            ("answer", text),
            ("Classification_Task", classification),
            ("Generation_Task", open_list),
            ("Mask_Task", open_list),
        ]
    )
    ft = pa.schema([("image", image), ("ID", text), ("metadata", text)])
    test = pa.schema([("ID", text), ("images", pa.list_(image)), ("Classification_Task", classification)])
    return {"profile": profile, "ft": ft, "test": test}


def write(out, config, rows, schema, omit):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=schema)
    for spec in omit:
        cfg, _, column = spec.partition(".")
        if cfg == config:
            table = table.drop_columns([column])
    (out / config).mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / config / "train-00000-of-00001.parquet")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--omit", action="append", default=[], help="CONFIG.COLUMN to leave out")
    ap.add_argument("--break", dest="case", choices=sorted(BREAKS), help="write one kind of bad data")
    args = ap.parse_args()
    rows = {"Full_Set": FICTITIOUS, "Retain_Set": REAL, "ft_Data": FT_ROWS, "Test_Set": TEST_ROWS}
    rows = copy.deepcopy(rows)
    edit, int_config = BREAKS[args.case] if args.case else (None, None)
    if edit:
        edit(rows)
    import pyarrow as pa

    s, s_int = schemas(), schemas(pa.int64())
    kinds = {"Full_Set": "profile", "Retain_Set": "profile", "ft_Data": "ft", "Test_Set": "test"}
    for config, kind in kinds.items():
        write(args.out, config, rows[config], (s_int if config == int_config else s)[kind], args.omit)
    write(args.out, "forget_5", FICTITIOUS[:1], s["profile"], args.omit)
    write(args.out, "retain_95", FICTITIOUS[1:], s["profile"], args.omit)


if __name__ == "__main__":
    main()
