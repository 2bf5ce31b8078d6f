"""``storyloom train-story``, ``storyloom train-subject`` and ``storyloom character create|reference|list|show|delete``.

Output paths (``--out``) are relative to the data directory unless absolute; input paths are relative to the
current directory, as usual. Both trainers resume from their checkpoint when run again with the same
arguments after an interruption (Ctrl-C writes one before stopping). ``train-subject`` registers the finished
character in the local store (usable in every guild, and by ``--character`` on the command line);
``character create`` registers one from a single picture there, at once (no training).
"""

from __future__ import annotations

import argparse
import datetime
import threading
from pathlib import Path
from typing import Any

from storyloom.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:
    from storyloom.cli.main import add_common_options

    story = subparsers.add_parser(
        "train-story",
        help="train a story LoRA on summary/story pairs",
        description='Train a LoRA on DATA.json, a JSON list of {"summary": ..., "story": ...} pairs, in the '
        "storyteller template; point story.adapter at the result and set story.prompt_format = storyteller.",
    )
    story.add_argument("dataset", type=Path, metavar="DATA.json", help="the summary/story pairs")
    story.add_argument(
        "--out", type=Path, required=True, help="adapter directory, e.g. adapters/NAME (under the data directory)"
    )
    story.add_argument(
        "--epochs", type=int, default=None, help="passes over the pairs (default: training.story_epochs)"
    )
    story.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps instead")
    story.add_argument("--lr", type=float, default=None, help="learning rate (default: training.story_learning_rate)")
    story.add_argument("--rank", type=int, default=None, help="LoRA rank (default: training.story_rank)")
    story.add_argument(
        "--eval-split", type=float, default=None, help="share of pairs held out for the eval loss (default 0.2)"
    )
    story.add_argument(
        "--qlora", action="store_true", help="load the base model in 4-bit (bitsandbytes) and train on top"
    )
    add_common_options(story)
    story.set_defaults(handler=run_train_story)

    subject = subparsers.add_parser(
        "train-subject",
        help="train a character (DreamBooth LoRA) from photos",
        description="Train a DreamBooth LoRA on the photos in IMAGES_DIR (a caption photo.txt beside photo.jpg is "
        "used when present) and register it as a character.",
    )
    subject.add_argument("images", type=Path, metavar="IMAGES_DIR", help="folder of photos of the subject")
    subject.add_argument("--token", required=True, help="rare identifier the model learns, e.g. bhna")
    subject.add_argument("--class", dest="class_name", required=True, help="what the subject is, e.g. cat")
    subject.add_argument(
        "--out", type=Path, required=True, help="output directory, e.g. characters/NAME (under the data directory)"
    )
    subject.add_argument("--name", default=None, help="character name (default: the last part of --out)")
    subject.add_argument("--description", default="", help="the character's look, for story illustrations")
    subject.add_argument(
        "--epochs", type=int, default=None, help="passes over the data (default: training.subject_epochs)"
    )
    subject.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps instead")
    subject.add_argument(
        "--num-class-images", type=int, default=None, help="class images for prior preservation (0 = none)"
    )
    subject.add_argument(
        "--train-text-encoder", action="store_true", default=None, help="also train a LoRA on the text encoder"
    )
    subject.add_argument(
        "--no-register", action="store_true", help="only write the LoRA; do not register the character"
    )
    add_common_options(subject)
    subject.set_defaults(handler=run_train_subject)

    character = subparsers.add_parser(
        "character", help="create (from one picture), list, show, give a picture to or delete characters"
    )
    actions = character.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="register a character from one picture (a drawing, a toy, a pet), no training",
        description="Register NAME from PICTURE (PNG, JPEG, WebP or a still GIF) in the local store, usable in "
        "every guild and by --character: pictures of it are guided by the picture through IP-Adapter.",
    )
    create.add_argument("name", metavar="NAME")
    create.add_argument("picture", type=Path, metavar="PICTURE", help="the character's picture")
    create.add_argument("--description", default="", help="a few words about it for the story writer")
    create.add_argument(
        "--weight", type=float, default=None, help="how strongly the picture guides drawings, 0-1 "
        "(default: characters.reference_weight)",
    )  # fmt: skip
    reference = actions.add_parser(
        "reference", help="give a character (a trained one too) a reference picture, or a new one"
    )
    reference.add_argument("name", metavar="NAME")
    reference.add_argument("picture", type=Path, metavar="PICTURE", help="the character's picture")
    reference.add_argument(
        "--weight", type=float, default=None, help="how strongly the picture guides drawings, 0-1 "
        "(default: characters.reference_weight)",
    )  # fmt: skip
    reference.add_argument(
        "--guild", type=int, default=None, help="the Discord guild it belongs to (default: the local ones)"
    )
    listing = actions.add_parser("list", help="list the characters")
    listing.add_argument("--guild", type=int, default=None, help="as seen from this Discord guild")
    listing.add_argument("--all", action="store_true", help="every guild's characters")
    show = actions.add_parser("show", help="show one character")
    show.add_argument("name")
    show.add_argument("--guild", type=int, default=None, help="as seen from this Discord guild")
    show.add_argument("--preview", type=Path, default=None, help="write the preview image (JPEG) here")
    delete = actions.add_parser("delete", help="unregister a character and delete its files")
    delete.add_argument("name")
    delete.add_argument(
        "--guild", type=int, default=None, help="the Discord guild it belongs to (default: the local ones)"
    )
    delete.add_argument(
        "--keep-files", action="store_true", help="keep the LoRA files (and every other training file) on disk"
    )
    for parser in (create, reference, listing, show, delete):
        add_common_options(parser)
    character.set_defaults(handler=run_character)
    for parser in (create, reference, listing, show, delete):
        parser.set_defaults(handler=run_character)


def _output_dir(config: Config, out: Path) -> Path:
    out = out.expanduser()
    return out if out.is_absolute() else config.paths.data_dir / out


def run_train_story(config: Config, args: argparse.Namespace) -> int:
    from storyloom.training.story_data import load_story_pairs
    from storyloom.training.story_lora import StoryTrainingArgs, train_story_lora

    load_story_pairs(args.dataset)  # a bad file fails before any model loads
    training = StoryTrainingArgs.from_config(
        config, args.dataset.resolve(), _output_dir(config, args.out), epochs=args.epochs, max_steps=args.max_steps,
        learning_rate=args.lr, rank=args.rank, eval_split=args.eval_split, qlora=args.qlora,
    )  # fmt: skip
    with StageBar() as bar:
        result = train_story_lora(config, training, progress=bar, should_cancel=bar.interrupted)
    if result.resumed_from is not None:
        print(f"resumed from step {result.resumed_from}")
    print(f"{result.steps} steps on {result.train_pairs} pairs ({result.eval_pairs} held out for evaluation)")
    if result.initial_eval_loss is not None:
        print(f"  before training: eval loss {result.initial_eval_loss:.4f}")
    for epoch in result.epochs:
        evaluation = "" if epoch.eval_loss is None else f", eval loss {epoch.eval_loss:.4f}"
        print(f"  epoch {epoch.epoch}: train loss {epoch.train_loss:.4f}{evaluation}")
    print(f"adapter: {result.adapter_dir}")
    print(f'use it: story.adapter = "{result.adapter_dir}" and story.prompt_format = "storyteller"')
    return 0


def run_train_subject(config: Config, args: argparse.Namespace) -> int:
    from storyloom.characters.registry import check_character_request
    from storyloom.queue.store import JobStore
    from storyloom.training.subject_lora import SubjectTrainingArgs, train_subject_lora

    output_dir = _output_dir(config, args.out)
    request = check_character_request(args.name or output_dir.name, args.token, args.class_name, args.description)
    for warning in request.warnings:
        print(f"warning: {warning}")
    training = SubjectTrainingArgs.from_config(
        config, args.images.resolve(), output_dir, identifier=request.identifier, class_name=request.class_name,
        epochs=args.epochs, max_steps=args.max_steps, num_class_images=args.num_class_images,
        train_text_encoder=args.train_text_encoder,
    )  # fmt: skip
    store = None if args.no_register else JobStore.from_config(config)
    try:
        if store is not None:
            _check_free(store, config, request.name, output_dir)
        with StageBar() as bar:
            result = train_subject_lora(config, training, progress=bar, should_cancel=bar.interrupted)
        if result.resumed_from is not None:
            print(f"resumed from step {result.resumed_from}")
        print(f"{result.steps} steps on {result.instance_images} photos and {result.class_images} class images")
        print(
            f"  loss on the photos (fixed noise): {result.probe_loss_before:.4f} before, {result.probe_loss_after:.4f} after"
        )
        print(f"LoRA: {result.lora_file}")
        for path in result.samples:
            print(f"sample: {path}")
        if store is not None:
            _register(store, config, request, result)
            print(f'use it: storyloom imagine "{request.name} in a garden" --character "{request.name}"')
    finally:
        if store is not None:
            store.close()
    return 0


def _check_free(store: Any, config: Config, name: str, output_dir: Path) -> None:
    """A taken name fails before training (unless it is this very LoRA, registered by an earlier run)."""
    from storyloom.characters.registry import lora_file
    from storyloom.queue.character import CharacterExists

    found = store.find_character(name)
    if found is not None and lora_file(found, config.paths.data_dir).parent.resolve() != output_dir.resolve():
        raise CharacterExists(f"a character named {found.name!r} already exists; choose another name")


def _register(store: Any, config: Config, request: Any, result: Any) -> None:
    from storyloom.domain.paths import relative_to_data_dir
    from storyloom.queue.character import NewCharacter

    lora_path = relative_to_data_dir(result.lora_file, config.paths.data_dir)
    found = store.find_character(request.name)
    if found is not None and found.lora_path == lora_path:
        print(f"character {found.name!r} ({found.token}) was already registered")
        return
    record = store.add_character(
        NewCharacter(
            name=request.name, identifier=request.identifier, class_name=request.class_name,
            description=request.description, lora_path=lora_path, preview=result.preview_jpeg(),
            metadata={"steps": result.steps, "probe_loss_before": result.probe_loss_before,
                      "probe_loss_after": result.probe_loss_after, "instance_images": result.instance_images,
                      "class_images": result.class_images},
        )
    )  # fmt: skip
    print(f"registered character {record.name!r} ({record.token})")


def run_character(config: Config, args: argparse.Namespace) -> int:
    from storyloom.queue.store import JobStore

    with JobStore.from_config(config) as store:
        if args.action == "create":
            return _create(store, config, args)
        if args.action == "reference":
            return _reference(store, config, args)
        if args.action == "list":
            return _list(store, config, args)
        if args.action == "show":
            return _show(store, config, args)
        return _delete(store, config, args)


def _read_reference(config: Config, picture: Path) -> Any:
    from storyloom.characters.references import prepare_reference
    from storyloom.errors import InvalidInput

    try:
        data = picture.expanduser().read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"no such file: {picture}") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise InvalidInput(f"{picture} cannot be read: {exc.strerror}") from None
    return prepare_reference(data, picture.name, min_side=config.characters.reference_min_side)


def _create(store: Any, config: Config, args: argparse.Namespace) -> int:
    from storyloom.characters.references import check_reference_request, reference_character

    request = check_reference_request(args.name, args.description, args.weight)
    store.check_character_name(request.name)  # a taken name fails before the picture is read
    picture = _read_reference(config, args.picture)
    record = store.add_character(reference_character(request, store.put_blob(picture.png), picture.preview))
    print(f"registered character {record.name!r} from {args.picture}: {_kind(record, config)}")
    print(f'use it: storyloom imagine "{record.name} in a garden" --character "{record.name}"')
    return 0


def _reference(store: Any, config: Config, args: argparse.Namespace) -> int:
    from storyloom.characters.references import check_reference_request

    record = store.character(args.name, guild_id=args.guild)
    weight = check_reference_request(record.name, record.description, args.weight).weight
    picture = _read_reference(config, args.picture)
    record = store.set_character_reference(
        record.name,
        store.put_blob(picture.png),
        guild_id=args.guild,
        weight=weight,
        preview=None if record.has_lora else picture.preview,  # a trained one keeps its samples' preview
    )
    print(f"character {record.name!r} has a new picture: {_kind(record, config)}")
    return 0


def _kind(record: Any, config: Config) -> str:
    from storyloom.characters.references import kind_details

    return kind_details(record, config.characters.reference_weight)


def _list(store: Any, config: Config, args: argparse.Namespace) -> int:
    records = store.list_characters(guild_id=args.guild, all_guilds=args.all)
    if not records:
        print("no characters are registered yet")
        return 0
    for record in records:
        scope = "local" if record.guild_id is None else f"guild {record.guild_id}"
        print(f"{record.name:<20} {_kind(record, config):<40} {scope:<24} {_date(record.created_at)}")
    return 0


def _show(store: Any, config: Config, args: argparse.Namespace) -> int:
    record = store.character(args.name, guild_id=args.guild)
    print(f"name:        {record.name}")
    print(f"kind:        {_kind(record, config)}")
    if record.token:
        print(f"token:       {record.token}")
    if record.description:
        print(f"description: {record.description}")
    if record.has_lora:
        print(f"LoRA:        {record.lora_path}")
    if record.has_reference:
        print(f"picture:     stored as {record.reference_digest}")
    print(f"made by:     {'the command line' if record.trained_by == 0 else f'user {record.trained_by}'}")
    print(f"guild:       {'every guild (local)' if record.guild_id is None else record.guild_id}")
    print(f"created:     {_date(record.created_at)}")
    for key, value in record.metadata.items():
        print(f"{key + ':':<13}{value}")
    if args.preview is not None and record.preview:
        args.preview.write_bytes(record.preview)
        print(f"preview:     {args.preview}")
    return 0


def _delete(store: Any, config: Config, args: argparse.Namespace) -> int:
    from storyloom.characters.cleanup import sweep
    from storyloom.characters.registry import remove_character_files

    data_dir = config.paths.data_dir
    record = store.delete_character(args.name, guild_id=args.guild)  # its stored picture goes with it
    removed = not args.keep_files and record.has_lora and remove_character_files(record, data_dir)
    print(f"deleted character {record.name!r}{' and its files' if removed else ''}")
    if not args.keep_files:  # e.g. the class images of the last character of its class
        for removal in sweep(store, data_dir, retention_days=config.queue.retention_days):
            print(f"also removed {removal.describe(data_dir)}")
    return 0


def _date(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


class StageBar:
    """tqdm progress for a run of several stages (class images, training, samples), one bar per stage, the
    loss as its postfix. Ctrl-C asks the trainer to checkpoint and stop (a second Ctrl-C stops at once)."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._stage = ""
        self._stop = threading.Event()

    def __enter__(self) -> StageBar:
        import signal

        self._previous = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._interrupt)
        return self

    def __exit__(self, *exc_info: object) -> None:
        import signal

        if self._bar is not None:
            self._bar.close()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous)

    def _interrupt(self, signum: int, frame: Any) -> None:
        if self._stop.is_set():
            raise KeyboardInterrupt
        self._stop.set()
        print("\nstopping after this step (a checkpoint is written); press Ctrl-C again to stop at once")

    def interrupted(self) -> bool:
        return self._stop.is_set()

    def __call__(self, progress: Any) -> None:
        from tqdm import tqdm

        stage, _, detail = (progress.stage or "").partition(", ")
        if self._bar is None or stage != self._stage or progress.total != self._bar.total:
            if self._bar is not None:
                self._bar.close()
            self._stage = stage
            self._bar = tqdm(total=progress.total, desc=stage, unit="step", leave=True)
        self._bar.n = progress.step
        self._bar.set_postfix_str(detail, refresh=True)
