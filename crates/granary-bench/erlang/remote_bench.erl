%% Distributed Erlang side of `granary-bench remote` (see crates/granary-bench/src/remote.rs).
%%
%% Server node: `erl -noshell -name srv@127.0.0.1 -setcookie C -run remote_bench server`
%% registers `echo` (answers {From, Bin} with {echo, Bin}) and `sink` (counts {msg, Bin}
%% and sends `done` to the client once the expected count is reached), prints
%% `listening NODE` and runs until killed.
%%
%% Client node: `-run remote_bench client SERVER TEST PAYLOAD COUNT` runs one
%% measurement against SERVER, prints one `result ...` line (nanoseconds) and halts.
%%   pingpong: result ROUND_TRIPS TOTAL_NS P50_NS P99_NS P999_NS MAX_NS
%%   oneway:   result MESSAGES TOTAL_NS
-module(remote_bench).
-export([server/0, client/1]).

-define(TIMEOUT, 120000).

server() ->
    register(echo, spawn(fun echo/0)),
    register(sink, spawn(fun() -> sink(0, 0, undefined) end)),
    io:format("listening ~s~n", [node()]),
    receive stop -> ok end.

echo() ->
    receive
        {From, Bin} -> From ! {echo, Bin}
    end,
    echo().

sink(Seen, Expected, Client) ->
    receive
        {expect, Count, From} ->
            From ! ready,
            sink(0, Count, From);
        {msg, _} when Seen + 1 =:= Expected ->
            Client ! done,
            sink(0, Expected, Client);
        {msg, _} ->
            sink(Seen + 1, Expected, Client)
    end.

client([ServerName, Test, PayloadText, CountText]) ->
    Server = list_to_atom(ServerName),
    Payload = binary:copy(<<66>>, list_to_integer(PayloadText)),
    Count = list_to_integer(CountText),
    case net_kernel:connect_node(Server) of
        true ->
            io:format("~s~n", [run(list_to_atom(Test), Server, Payload, Count)]),
            halt(0);
        _ ->
            io:format("error cannot connect to ~s~n", [Server]),
            halt(1)
    end.

now_ns() -> erlang:monotonic_time(nanosecond).

round_trip(Echo, Bin) ->
    Echo ! {self(), Bin},
    receive
        {echo, _} -> ok
    after ?TIMEOUT -> exit(echo_timeout)
    end.

run(pingpong, Server, Bin, Count) ->
    Echo = {echo, Server},
    [round_trip(Echo, Bin) || _ <- lists:seq(1, min(200, Count))],
    Start = now_ns(),
    Latencies = [begin
                     T0 = now_ns(),
                     round_trip(Echo, Bin),
                     now_ns() - T0
                 end || _ <- lists:seq(1, Count)],
    Total = now_ns() - Start,
    Sorted = lists:sort(Latencies),
    io_lib:format("result ~b ~b ~b ~b ~b ~b",
                  [Count, Total, pct(Sorted, Count, 0.5), pct(Sorted, Count, 0.99),
                   pct(Sorted, Count, 0.999), lists:last(Sorted)]);
run(oneway, Server, Bin, Count) ->
    Sink = {sink, Server},
    Sink ! {expect, Count, self()},
    receive ready -> ok after ?TIMEOUT -> exit(sink_not_ready) end,
    Start = now_ns(),
    send_n(Sink, Bin, Count),
    receive done -> ok after ?TIMEOUT -> exit(sink_timeout) end,
    io_lib:format("result ~b ~b", [Count, now_ns() - Start]).

send_n(_, _, 0) -> ok;
send_n(Sink, Bin, N) ->
    Sink ! {msg, Bin},
    send_n(Sink, Bin, N - 1).

pct(Sorted, Len, Q) ->
    lists:nth(max(1, min(Len, ceil(Q * Len))), Sorted).
