"""Golden CHAIR numbers made by running the original CHAIR code (Rohrbach et al., EMNLP 2018) on a small COCO set.

The original ``utils/chair.py`` is Python 2 code. It is run unchanged, under Python 2.7, with the versions its
``requirements.txt`` pins (nltk 3.2.5, pattern 3.6), from a checkout at the pinned commit:

    git clone https://github.com/LisaAnne/Hallucination /tmp/peers/Hallucination  && git -C ... checkout 6e4d33c
    git clone https://github.com/clips/pattern /tmp/peers/pattern                  && git -C ... checkout d25511f
    pip download --no-binary :all: nltk==3.2.5 && tar xzf nltk-3.2.5.tar.gz -C /tmp/peers   # its source
    python2.7 -m pip install --target /tmp/peers/py2lib six future                  # what nltk/pattern import
    PYTHONPATH=/tmp/peers/nltk-3.2.5:/tmp/peers/py2lib \
        python2.7 tests/golden/chair/make_goldens.py --peers /tmp/peers

What is not the original's own setting, and why:

* ``pattern.en`` is not importable without its MySQL client and WordNet data; the original only calls
  ``pattern.en.singularize``, which is ``pattern.text.en.inflect.singularize``, so a module ``pattern.en`` holding
  exactly that function (imported from pattern's own source, pattern 3.6 = inflect.py unchanged since 2017-08-24)
  is put in ``sys.modules``.
* ``nltk.word_tokenize`` splits sentences with the trained Punkt model ``tokenizers/punkt/english.pickle``, which
  is downloaded data, not code, and is not available here. The generator gives ``word_tokenize`` an untrained
  ``PunktSentenceTokenizer()`` instead (the captions below avoid abbreviations, where the two differ).
  ``goldens.json`` records this under ``"sentence_splitter"``.
* ``from misc import *`` pulls the paper's figure code; the only names chair.py uses from it are ``os``, so a
  module ``misc`` holding ``os`` replaces it.

It writes tests/golden/chair/coco/ (instances_*2014.json, captions_*2014.json: the original reads exactly these
four files) and tests/golden/chair/goldens.json: the captions file in the original's input format, the original's
``compute_chair`` output (overall CHAIRs/CHAIRi and every per-sentence field), ``caption_to_words`` on every
generated and ground-truth caption, and ``singularize`` on a word list.
"""


import argparse
import json
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))

# (image_id, split, COCO instance categories, ground-truth captions, generated caption)
IMAGES = [
    (
        1,
        "val",
        ["dog", "cat", "couch"],
        ["Two dogs and a cat on a sofa.", "A dog sleeps next to a cat."],
        "Two dogs and three cats are lying on a couch.",
    ),
    (
        2,
        "val",
        ["person", "horse"],
        ["Some men are riding horses.", "People on horseback."],
        "A group of men riding horses past a barn with children watching.",
    ),
    (
        3,
        "val",
        ["hot dog", "cup"],
        ["A hot dog on a plate next to a cup.", "A hotdog and a drink."],
        "A hot dog and a wine glass next to a bottle of ketchup.",
    ),
    (
        4,
        "val",
        ["fire hydrant"],
        ["A red fire hydrant on the sidewalk.", "A hydrant by the road."],
        "A fire hydrant next to a stop sign and a traffic light.",
    ),
    (
        5,
        "val",
        ["teddy bear", "bed"],
        ["A teddy bear on a bed.", "A stuffed bear lying on a bed."],
        "A teddy bear and a bear sitting on a bed with a pillow.",
    ),
    (
        6,
        "val",
        ["elephant"],
        ["A baby elephant walking.", "A young elephant in the grass."],
        "A baby elephant and an adult elephant walking with a person.",
    ),
    (
        7,
        "val",
        ["airplane"],
        ["A passenger jet on the runway.", "A large airplane taking off."],
        "A passenger jet parked at the gate with a passenger train behind it.",
    ),
    (
        8,
        "val",
        ["toilet"],
        ["A white toilet in a bathroom.", "A bathroom with the toilet seat up."],
        "The seat of the toilet is up in a small bathroom with a chair.",
    ),
    (
        9,
        "val",
        ["person", "tie"],
        ["A man wearing a bow tie.", "A man in a suit with a tie."],
        "A man wearing a bow tie and a hat holding a cell phone.",
    ),
    (
        10,
        "val",
        ["dog"],
        ["A dog in the park.", "A brown dog on the grass."],
        "A dog and another dog next to a dog and a frisbee.",
    ),
    (
        11,
        "val",
        ["motorcycle", "person"],
        ["A man on a motorcycle.", "A person riding a motorbike."],
        "A man riding a motor bike down the street next to a motorcycle.",
    ),
    (
        12,
        "val",
        ["wine glass", "dining table"],
        ["Two wine glasses on a table.", "Glasses of wine on a dining table."],
        "Two wine glasses and a glass of water on a table.",
    ),
    (
        13,
        "val",
        ["skis", "person"],
        ["A skier going down a slope.", "A person on skis in the snow."],
        "A skier with skis; a snowboarder and a snowboard behind.",
    ),
    (14, "val", ["cat"], ["A cat sleeping.", "A kitten curled up."], "A cat sleeps. A dog watches. A mouse runs."),
    (15, "val", [], ["An empty field.", "Green grass under a blue sky."], "A sunny day outside."),
    (
        16,
        "val",
        ["giraffe", "zebra"],
        ["A giraffe and zebras.", "Zebras and a giraffe in the zoo."],
        "A GIRAFFE standing near two ZEBRAS and an Adult Giraffe.",
    ),
    (
        17,
        "val",
        ["person", "sports ball", "baseball bat"],
        ["A batter swings at the ball.", "A baseball player at home plate."],
        "A baseball player with a baseball bat and a baseball glove at home plate.",
    ),
    (
        18,
        "val",
        ["train"],
        ["A train on the train tracks.", "A long train passing."],
        "A train on the train track near a car and a truck.",
    ),
    (
        19,
        "val",
        ["laptop", "mouse", "keyboard"],
        ["A laptop with a mouse.", "A laptop computer on a desk."],
        "A laptop computer with a keyboard, a mouse, and a cell phone.",
    ),
    (
        20,
        "val",
        ["pizza", "knife"],
        ["A pizza with a knife.", "A cheese pizza cut into slices."],
        "Two pizzas, some knives and forks on the dining table.",
    ),
    (
        21,
        "val",
        ["bus", "person"],
        ["A bus at the stop.", "People boarding a bus."],
        "Two buses and a person's umbrella at the bus stop.",
    ),
    (
        22,
        "val",
        ["sheep"],
        ["Sheep grazing in a field.", "A flock of sheep."],
        "Sheep and cattle grazing next to some cows.",
    ),
    (
        23,
        "val",
        ["umbrella", "person"],
        ["A woman with an umbrella.", "A lady holding an umbrella."],
        "A woman's umbrella, a man's backpack, and children's toys.",
    ),
    (
        24,
        "val",
        ["tennis racket", "person"],
        ["A tennis player.", "A woman swinging a tennis racket."],
        "A woman holding tennis rackets and tennis balls.",
    ),
    (
        25,
        "val",
        ["bird"],
        ["A bird on a branch.", "A small bird perched."],
        "A baby bird and an adult bird next to birds' nests.",
    ),
    (
        26,
        "val",
        ["potted plant", "vase"],
        ["A potted plant by a vase.", "Flowers in a vase next to a plant."],
        "Potted plants and vases of flowers by the window with a clock.",
    ),
    (
        27,
        "val",
        ["surfboard", "person"],
        ["A surfer riding a wave.", "A man on a surfboard."],
        "A surfer on a surfboard, surfboards on the beach, and a kite.",
    ),
    (28, "val", ["sandwich"], ["A sandwich on a plate.", "Half a sandwich."], ""),
    (
        29,
        "val",
        ["refrigerator", "oven"],
        ["A kitchen with a fridge and an oven.", "A refrigerator next to a stove."],
        "A kitchen with a stove top oven, a microwave and a refrigerator.",
    ),
    (
        30,
        "val",
        ["book", "person"],
        ["A child reading a book.", "A kid with books."],
        'A child reading "books" (and a magazine) on a couch -- and a dog-eared book.',
    ),
    (
        31,
        "train",
        ["car", "person"],
        ["A car parked on the street.", "A man next to his car."],
        "A car, a van and a taxi parked near a parking meter.",
    ),
    (
        32,
        "train",
        ["boat"],
        ["Boats in the harbour.", "A small boat on the water."],
        "Two boats and a ship near a boy swimming.",
    ),
    (
        33,
        "train",
        ["bench", "person"],
        ["A man sitting on a bench.", "A person on a park bench."],
        "A man sitting on a bench with a bicycle and bikes nearby.",
    ),
    (
        34,
        "train",
        ["toothbrush", "sink"],
        ["A toothbrush by the sink.", "A sink with a toothbrush."],
        "Toothbrushes and a hair drier next to the sink and the mirror.",
    ),
    (
        35,
        "train",
        ["clock"],
        ["A clock tower.", "A large clock on a building."],
        "A clock on a tower over people's heads and a bus.",
    ),
    (
        36,
        "train",
        ["donut", "cup"],
        ["Donuts and coffee.", "A donut next to a cup."],
        "Doughnuts and donuts with a cup of coffee and mugs.",
    ),
    (
        37,
        "train",
        ["scissors"],
        ["A pair of scissors.", "Scissors on a table."],
        "A pair of scissors next to knives and a spoon.",
    ),
    (38, "train", ["cow"], ["A cow in a field.", "Cows grazing."], "A cow and calves and oxen in the field."),
    (
        39,
        "train",
        ["tv", "remote"],
        ["A television and a remote.", "A tv with a remote control."],
        "A TV, a remote, and a television set in a living room with a couch.",
    ),
    (
        40,
        "train",
        ["suitcase"],
        ["A suitcase on the bed.", "Luggage on a bed."],
        "Suitcases, a suit case and luggage on the floor.",
    ),
]

SINGULARIZE_WORDS = [
    "glasses",
    "glass",
    "people",
    "men",
    "women",
    "children",
    "mice",
    "buses",
    "knives",
    "skis",
    "oxen",
    "geese",
    "bus",
    "scissors",
    "dogs",
    "cattle",
    "bananas",
    "boxes",
    "sheep",
    "couches",
    "ties",
    "is",
    "was",
    "this",
    "his",
    "giraffes",
    "donuts",
    "doughnuts",
    "cows",
    "calves",
    "toothbrushes",
    "skateboarding",
    "shelves",
    "teeth",
    "feet",
    "leaves",
    "wolves",
    "dishes",
    "benches",
    "sandwiches",
    "pizzas",
    "'s",
    "dogs'",
    ",",
    ".",
]


def synonym_categories(peers):
    path = os.path.join(peers, "Hallucination", "data", "synonyms.txt")
    with open(path, encoding="utf-8") as f:
        return [line.strip().split(", ")[0] for line in f if line.strip()]


def write_coco(out_dir, categories):
    """COCO 2014 layout: one instances and one captions file per split, as the original reads them."""
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    cats = [{"id": i + 1, "name": name, "supercategory": "thing"} for i, name in enumerate(categories)]
    cat_id = dict((c["name"], c["id"]) for c in cats)
    for split in ("train", "val"):
        rows = [r for r in IMAGES if r[1] == split]
        images = [
            {"id": r[0], "file_name": "COCO_%s2014_%012d.jpg" % (split, r[0]), "width": 64, "height": 48} for r in rows
        ]
        instances, captions = [], []
        for image_id, _, objects, truths, _ in rows:
            for k, name in enumerate(objects):
                x = 4 + 6 * k
                instances.append(
                    {
                        "id": image_id * 100 + k,
                        "image_id": image_id,
                        "category_id": cat_id[name],
                        "bbox": [x, 4, 5, 5],
                        "area": 25.0,
                        "iscrowd": 0,
                        "segmentation": [[x, 4, x + 5, 4, x + 5, 9, x, 9]],
                    }
                )
            for k, text in enumerate(truths):
                captions.append({"id": image_id * 100 + k, "image_id": image_id, "caption": text})
        head = {"info": {"description": "mmdiag CHAIR fixture"}, "licenses": []}
        inst = dict(head, images=images, annotations=instances, categories=cats)
        caps = dict(head, images=images, annotations=captions)
        for name, payload in (("instances_%s2014.json" % split, inst), ("captions_%s2014.json" % split, caps)):
            with open(os.path.join(out_dir, name), "w") as f:
                json.dump(payload, f, indent=1, sort_keys=True)


def load_original(peers):
    """Import the original chair.py unchanged, with the three substitutions the module docstring lists."""
    sys.path.insert(0, os.path.join(peers, "pattern"))
    import pattern.text  # noqa: F401  (pattern's own package, for inflect's imports)

    en = types.ModuleType("pattern.text.en")
    en.__path__ = [os.path.join(peers, "pattern", "pattern", "text", "en")]
    sys.modules["pattern.text.en"] = en
    from pattern.text.en.inflect import singularize

    shim = types.ModuleType("pattern.en")
    shim.singularize = singularize
    sys.modules["pattern.en"] = shim

    misc = types.ModuleType("misc")
    misc.os = os
    sys.modules["misc"] = misc

    import nltk
    import nltk.tokenize
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    untrained = PunktSentenceTokenizer()
    nltk.tokenize.sent_tokenize = lambda text, language="english": untrained.tokenize(text)

    sys.path.insert(0, os.path.join(peers, "Hallucination", "utils"))
    import chair

    return chair, singularize, nltk.__version__


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--peers", default="/tmp/peers")
    args = parser.parse_args()
    peers = os.path.abspath(args.peers)
    coco_dir = os.path.join(HERE, "coco")
    write_coco(coco_dir, synonym_categories(peers))

    cap_eval = dict((str(r[0]), {"image_id": r[0], "caption": r[4]}) for r in IMAGES)
    for row in cap_eval.values():
        row.update(
            dict((k, 0.0) for k in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "CIDEr", "SPICE", "ROUGE_L"))
        )
    cap_file_payload = {
        "overall": dict(
            (k, 0.0) for k in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "CIDEr", "SPICE", "ROUGE_L")
        ),
        "imgToEval": cap_eval,
    }
    cap_file = os.path.join(peers, "chair_caps.json")
    with open(cap_file, "w") as f:
        json.dump(cap_file_payload, f)

    chair, singularize, nltk_version = load_original(peers)
    cwd = os.getcwd()
    os.chdir(os.path.join(peers, "Hallucination"))  # the original reads data/synonyms.txt relative to cwd
    try:
        _, imids, _ = chair.load_generated_captions(cap_file)
        evaluator = chair.CHAIR(imids, coco_dir)
        evaluator.get_annotations()
        output = evaluator.compute_chair(cap_file)
        words = {}
        for r in IMAGES:
            for text in [r[4]] + list(r[3]):
                w, nodes, idxs, raw = evaluator.caption_to_words(text)
                words[text] = {"words": w, "node_words": nodes, "idxs": idxs, "raw_words": raw}
        gt_objects = dict((str(k), sorted(v)) for k, v in evaluator.imid_to_objects.items())
    finally:
        os.chdir(cwd)

    goldens = {
        "generator": "tests/golden/chair/make_goldens.py",
        "peer": "LisaAnne/Hallucination@6e4d33c utils/chair.py, run under Python %s" % sys.version.split()[0],
        "versions": {"nltk": nltk_version, "pattern": "clips/pattern@d25511f (inflect.py as in 3.6)"},
        "sentence_splitter": "untrained nltk PunktSentenceTokenizer() (punkt english.pickle not available)",
        "captions": [{"image_id": r[0], "caption": r[4]} for r in IMAGES],
        "overall_metrics": {
            "CHAIRs": output["overall_metrics"]["CHAIRs"],
            "CHAIRi": output["overall_metrics"]["CHAIRi"],
        },
        "sentences": sorted(output["sentences"], key=lambda s: s["image_id"]),
        "gt_objects": gt_objects,
        "caption_to_words": words,
        "singularize": dict((w, singularize(w)) for w in SINGULARIZE_WORDS),
    }
    with open(os.path.join(HERE, "goldens.json"), "w", encoding="utf-8") as f:
        f.write(
            json.dumps(goldens, indent=1, sort_keys=True, ensure_ascii=False).decode("utf-8")
            if sys.version_info[0] == 2
            else json.dumps(goldens, indent=1, sort_keys=True)
        )
        f.write("\n")
    print(
        "CHAIRs %.6f CHAIRi %.6f over %d captions"
        % (goldens["overall_metrics"]["CHAIRs"], goldens["overall_metrics"]["CHAIRi"], len(IMAGES))
    )


if __name__ == "__main__":
    main()
