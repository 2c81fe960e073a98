"""`seq`: a real coreutils command that prints many lines fast (long logs, benchmarks)."""

from . import command

CHUNK = 4096  # lines per write; drain between chunks so SSH flow control holds


@command("seq")
async def seq(ctx, args):
    try:
        numbers = [int(a) for a in args]
    except ValueError:
        bad = next(a for a in args if not a.lstrip("-").isdigit())
        ctx.error(f"seq: invalid floating point argument: '{bad}'")
        return 1
    if len(numbers) == 1:
        first, step, last = 1, 1, numbers[0]
    elif len(numbers) == 2:
        first, step, last = numbers[0], 1, numbers[1]
    elif len(numbers) == 3:
        first, step, last = numbers
    else:
        ctx.error("seq: missing operand" if not numbers else f"seq: extra operand '{args[3]}'")
        return 1
    if step == 0:
        ctx.error("seq: invalid Zero increment value: '0'")
        return 1
    values = range(first, last + (1 if step > 0 else -1), step)
    drain = getattr(ctx.out, "drain", None)
    for start in range(0, len(values), CHUNK):
        ctx.out.write("".join(f"{v}\n" for v in values[start:start + CHUNK]))
        if drain is not None:
            await drain()
    return 0
