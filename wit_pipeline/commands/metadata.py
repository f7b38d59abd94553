"""`wit metadata build`: the query list (WordNet, unigrams, PMI bigrams, titles) as a JSON list."""

from __future__ import annotations

from wit_pipeline.cli import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser("metadata", help="build the query list (MetaCLIP metadata)")
    actions = parser.add_subparsers(dest="metadata_command", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build",
        help="write entries.json",
        description="Build the query list the CLIP way. Parts not given are taken from the real "
        "files found on this machine (WordNet, pywordfreq, wordsegment) unless --no-discover.",
    )
    build.add_argument("--output", required=True, metavar="ENTRIES.json")
    build.add_argument(
        "--wordnet", metavar="DIR", help="WordNet folder with data.noun etc. (Debian wordnet-base or NLTK)"
    )
    build.add_argument("--unigrams", metavar="FILE", help="word;count or word<TAB>count file (gz ok)")
    build.add_argument("--min-unigram-count", type=int, default=100)
    build.add_argument("--bigrams", metavar="FILE", help="'w1 w2<TAB>count' file")
    build.add_argument(
        "--bigram-unigrams", metavar="FILE", help="unigram counts of the bigrams' corpus (default: --unigrams)"
    )
    build.add_argument("--min-pmi", type=float, default=30.0, help="PMI as the ratio P(ab)/(P(a)P(b)) (default 30)")
    build.add_argument("--titles", action="append", default=[], metavar="FILE", help="one title per line; repeatable")
    build.add_argument("--max-entries", type=int, default=500_000)
    build.add_argument("--no-discover", action="store_true", help="use only the inputs given by flags")
    build.set_defaults(run=run)


def run(args) -> int:
    import json

    from wit_pipeline import io
    from wit_pipeline.text import metadata

    given = {
        "wordnet": args.wordnet,
        "unigrams": args.unigrams,
        "bigrams": args.bigrams,
        "bigram_unigrams": args.bigram_unigrams,
    }
    inputs = {k: v for k, v in given.items() if v}
    if not args.no_discover:
        for name, path in metadata.packaged_sources().items():
            # wordsegment's unigrams only stand in for the bigrams' corpus when its bigrams are used.
            if name == "bigram_unigrams" and (args.bigrams or args.bigram_unigrams):
                continue
            inputs.setdefault(name, path)
    if args.max_entries < 1:
        raise UsageError("--max-entries must be >= 1")
    config = metadata.MetadataConfig(
        wordnet=inputs.get("wordnet"),
        unigrams=inputs.get("unigrams"),
        min_unigram_count=args.min_unigram_count,
        bigrams=inputs.get("bigrams"),
        bigram_unigrams=inputs.get("bigram_unigrams"),
        min_pmi=args.min_pmi,
        titles=tuple(args.titles),
        max_entries=args.max_entries,
    )
    try:
        parts = metadata.build_parts(config)
    except (FileNotFoundError, ValueError) as err:
        raise UsageError(str(err)) from err
    if not parts:
        raise UsageError("no inputs: give --wordnet, --unigrams, --bigrams or --titles")
    entries, added = metadata.merge(parts, config.max_entries)
    io.write_atomic(args.output, (json.dumps(entries, ensure_ascii=False) + "\n").encode())
    for name, path in inputs.items():
        print(f"{name}: {path}")
    for path in args.titles:
        print(f"titles: {path}")
    for name, items in parts.items():
        print(f"  {name}: {len(items)} candidates, {added[name]} new entries")
    print(f"{len(entries)} entries -> {args.output}")
    return 0
