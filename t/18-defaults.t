# What the default configuration does for ordinary clients: TCP_NODELAY on every RTMP connection
# (`tcp_nodelay`), audio written together with the next video frame (`write_merge auto`), and one
# GOP cache budget per worker (`gop_cache_budget`) that drops the caches of the streams whose last
# player joined longest ago. System calls are watched with strace on the worker.
use lib 't/lib';
use Test::Nginx::Rtmp;

# Runs $code while strace records the worker's calls of $syscalls; returns the trace's lines.
sub traced {
    my ($syscalls, $code) = @_;
    my $pid = worker_pid() or return;
    my $out = "$ENV{TEST_NGINX_PREFIX}/strace-" . int(rand(1e9)) . '.txt';
    my $st = fork() // die "fork: $!";
    if (!$st) {
        open STDERR, '>', '/dev/null';
        { exec 'strace', '-qq', '-e', "trace=$syscalls", '-p', $pid, '-o', $out }
        POSIX::_exit(127);
    }
    # strace writes its file once attached.
    wait_until(sub { -e $out }, 5);
    Time::HiRes::sleep(0.2);
    my @r = $code->();
    kill 'INT', $st;
    waitpid($st, 0);
    open my $fh, '<', $out or return;
    my @lines = <$fh>;
    return (\@lines, @r);
}

# Connects, shakes hands and closes; true when the handshake completed.
sub handshake_once {
    my $s = rtmp_connect_raw($_[0]) or return;
    my $done = rtmp_handshake($s);
    close $s;
    return $done;
}

# writev calls per file descriptor in a trace.
sub writevs_by_fd {
    my %n;
    $n{$_}++ for map { /^writev\((\d+),/ ? $1 : () } @{ $_[0] };
    return %n;
}

run_tests();

__DATA__

=== TEST 1: TCP_NODELAY is set on every accepted connection by default
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my ($trace, $ok) = main::traced('setsockopt', sub { main::handshake_once($TEST_NGINX_RTMP_PORT) });
ok($ok, 'a client connected and shook hands');
my @nodelay = grep { /setsockopt\(\d+, SOL_TCP, TCP_NODELAY, \[1\]/ } @$trace;
is(scalar @nodelay, 1, 'TCP_NODELAY set once, on the client connection') or diag(explain($trace));



=== TEST 2: tcp_nodelay off leaves the OS default; a bad value fails nginx -t
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    tcp_nodelay off;
    application live { live on; }
}
--- run
my ($trace, $ok) = main::traced('setsockopt', sub { main::handshake_once($TEST_NGINX_RTMP_PORT) });
ok($ok, 'a client connected and shook hands');
is(scalar(grep { /TCP_NODELAY/ } @$trace), 0, 'no TCP_NODELAY') or diag(explain($trace));



=== TEST 3: tcp_nodelay takes on|off only
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    tcp_nodelay sometimes;
}
--- must_die: tcp_nodelay
--- must_die_line: 3



=== TEST 4: write_merge auto (the default) writes audio with the next video frame: far fewer writes than off, every frame delivered
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application auto { live on; }
    application off { live on; write_merge off; }
}
--- run
my $port = $TEST_NGINX_RTMP_PORT;
my %pub = map { $_ => publish("rtmp://127.0.0.1:$port/$_/s", loop => 1) } qw(auto off);
ok(wait_published('s', 2), 'both streams published') or diag(publisher_log($pub{auto}));
my %writes;
my %frames;
for my $app (qw(auto off)) {
    my ($trace, $v, $au, $err) = main::traced('writev', sub { count_frames("rtmp://127.0.0.1:$port/$app/s", 4) });
    my %by_fd = main::writevs_by_fd($trace);
    # The player's connection is the one written to most (publishers get only acknowledgements).
    my ($most) = sort { $b <=> $a } values %by_fd;
    $writes{$app} = $most // 0;
    $frames{$app} = [$v, $au];
    cmp_ok($v, '>=', 80, "$app: video frames decoded") or diag($err);
    cmp_ok($au, '>=', 140, "$app: audio frames decoded");
    unlike($err, qr/error|non-existing/i, "$app: no decoding errors");
}
note("writev calls to the player: auto $writes{auto}, off $writes{off}; frames decoded: auto "
     . "@{ $frames{auto} }, off @{ $frames{off} }");
# Audio (43 frames/s) never causes a write of its own with auto: at most one per video frame
# (25/s), plus the join's statuses and burst.
cmp_ok($writes{auto}, '<=', $frames{auto}[0] + 40, 'auto: no more writes than video frames');
cmp_ok($writes{off}, '>', $writes{auto}, 'off: audio frames cause writes of their own');



=== TEST 5: gop_cache_budget: past it the cache of the stream whose last player joined longest ago is dropped (once logged); the stream still plays
--- log_level: debug
--- config
gop_cache_budget 40k;
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $port = $TEST_NGINX_RTMP_PORT;
my $pa = publish("rtmp://127.0.0.1:$port/live/a", loop => 1);
ok(wait_published('a'), 'a published') or diag(publisher_log($pa));
my $pb = publish("rtmp://127.0.0.1:$port/live/b", loop => 1);
ok(wait_published('b'), 'b published') or diag(publisher_log($pb));
# A player joins b: b is the warmer stream from now on.
my $bp = in_background(sub { count_frames("rtmp://127.0.0.1:$port/live/b", 8) });
ok(wait_playing('b'), 'a player joined b');
ok(wait_log(qr/GOP caches reached "gop_cache_budget" \(40960 bytes\)/, 1, 15),
   'the budget was reached and logged');
ok(wait_log(qr/GOP cache of "\w+" dropped/, 1, 10), 'a cache was dropped');
my ($first) = log_lines(qr/GOP cache of "\w+" dropped/);
like($first, qr/GOP cache of "a" dropped/, 'the first dropped is a: nobody joined it');
my ($v) = count_frames("rtmp://127.0.0.1:$port/live/a", 3);
cmp_ok($v // 0, '>=', 20, 'a still plays (its player waited for a keyframe)');
my ($bv) = result_of($bp);
cmp_ok($bv // 0, '>=', 100, 'b played throughout');
is(scalar(log_lines(qr/reached "gop_cache_budget"/)), 1, 'logged once');



=== TEST 6: gop_cache_budget is a worker-wide setting: rtmp level only
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; gop_cache_budget 1m; }
}
--- must_die: "gop_cache_budget" directive is not allowed here
--- must_die_line: 3



=== TEST 7: write_merge takes auto, off or a time
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; write_merge sometimes; }
}
--- must_die: "write_merge"
--- must_die_line: 3
