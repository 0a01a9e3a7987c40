#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that hands the server's bytes to the client at a
fixed rate, for a download that takes a known while (the DDI test kills a
client in the middle of one). SWUpdate 2022.12's own -n limit does not slow
its artifact downloads.

    slow_proxy.py TARGET_PORT BYTES_PER_SECOND

Prints the port it listens on, then serves until killed. Requests go to the
server unchanged (the Host header names the proxy, so the server's links lead
back through it).
"""
import asyncio
import sys

CHUNK = 4096


async def pipe(reader, writer, rate):
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
            if rate:
                await asyncio.sleep(len(data) / rate)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main():
    target_port = int(sys.argv[1])
    rate = int(sys.argv[2])

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, server_writer, 0), pipe(server_reader, client_writer, rate))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
