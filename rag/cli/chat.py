"""`rag chat [--url URL] [--conversation ID]`: a conversation at the terminal. Each line is a
question that follows the ones before (retrieval and the prompt read them); the answer streams
as it is generated. Ctrl-C stops the answer being written (the chat goes on), Ctrl-D (or Ctrl-C
at the prompt) leaves, naming the conversation so it can be continued."""

from __future__ import annotations

import argparse
import sys

from rag.cli.ask import print_answer
from rag.cli.asking import NEW, Asker, add_answer_options
from rag.cli.status import EXIT_FAILED, EXIT_OK
from rag.errors import ConversationNotFound, RagError
from rag.settings import Settings

PROMPT = "> "


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    machine: argparse.ArgumentParser,
) -> None:
    chat = commands.add_parser(
        "chat",
        parents=[common],
        help="a conversation: each line follows up on the ones before",
        description="Ask questions one line at a time; each follows up on the ones before "
        "(retrieval and the prompt read the conversation). Ctrl-C stops an answer, Ctrl-D "
        "leaves. The conversation is kept beside the index (or by the server with --url).",
    )
    add_answer_options(chat)
    chat.add_argument(
        "--url", default=None, help="chat with a running `rag serve` instead of this process"
    )
    chat.add_argument(
        "--conversation", default=None, metavar="ID", help="continue this conversation"
    )
    chat.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    asker = Asker(args, settings, args.conversation or NEW)
    if sys.stdin.isatty():
        print("Ask away. Ctrl-C stops an answer, Ctrl-D leaves.", file=sys.stderr)
    while True:
        try:
            question = input(PROMPT if sys.stdin.isatty() else "")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            break
        if not question.strip():
            continue
        events = None
        try:
            events = asker.events(question)
            done = print_answer(events)
            asker.conversation_id = done.conversation_id or asker.conversation_id
        except KeyboardInterrupt:
            close = getattr(events, "close", None) if events is not None else None
            if close is not None:
                close()
            print("(stopped)", file=sys.stderr)
        except RagError as err:  # this question failed (a refusal, the LLM): the chat goes on
            print(f"error: {err}", file=sys.stderr)
            if isinstance(err, ConversationNotFound):
                return EXIT_FAILED
    if asker.conversation_id not in (None, NEW):
        named = asker.conversation_id
        print(f"conversation {named} (go on with rag chat --conversation {named})", file=sys.stderr)
    return EXIT_OK
