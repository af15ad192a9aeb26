# Every worker serves every stream: a stream published through one worker plays from all of
# them (RTMP and HTTP-FLV), with or without `listen … reuseport`, with the C module's
# rtmp_auto_push directives or without; a worker pulls a stream from its publisher's worker only
# while it has players, over that worker's unix link socket; reloads and duplicate publishes.
use lib 't/lib';
use Test::Nginx::Rtmp;
use JSON::PP ();

sub count_lines { scalar log_lines(shift) }

sub bench {
    my ($url, $players, $secs) = @_;
    my $json = `timeout @{[$secs + 30]} @{[rtmp_cli()]} bench '$url' --players $players --duration $secs --json 2>/dev/null`;
    return eval { JSON::PP::decode_json($json) } // { raw => $json };
}

# The pids of the workers that logged a line matching $re.
sub pids_of {
    my $re = shift;
    my %p = map { /\[\w+\] (\d+)#/ ? ($1 => 1) : () } log_lines($re);
    my @pids = sort keys %p;
    return @pids;
}

sub flv_play {
    my ($url, $secs) = @_;
    my $json = `timeout @{[$secs + 20]} @{[rtmp_cli()]} flv-play '$url' --duration $secs --json 2>/dev/null`;
    return eval { JSON::PP::decode_json($json) } // { raw => $json };
}

# One publisher and 20 players of live/src, wherever the kernel or nginx puts them: checks that
# $sockets sockets listen, that every player gets frames, that each worker published the stream
# at most once (the client in one, a link in each other one with players), and that FFmpeg decodes
# it. Returns the pids of the workers that had players and of those that published it.
sub players_everywhere {
    my $sockets = shift;
    my $port = $ENV{TEST_NGINX_RTMP_PORT};
    my @listen = grep { /LISTEN/ } split /\n/, `ss -ltnH 'sport = :$port'`;
    is(scalar(@listen), $sockets, "$sockets listening socket(s)") or diag(join "\n", @listen);
    my $url = "rtmp://127.0.0.1:$port/live/src";
    my $pub = publish($url, loop => 1, timeout => 60);
    ok(wait_published('src'), 'publishing') or diag(publisher_log($pub));
    my $r = bench($url, 20, 5);
    is($r->{players_with_frames}, 20, '20 players all get frames') or diag(explain($r));
    is($r->{players_failed}, 0, 'none fails');
    my @players = pids_of(qr/rtmp: live: play "src"/);
    my @publishers = pids_of(qr/rtmp: live: publish "src"/);
    is(count_lines(qr/rtmp: live: publish "src"/), scalar(@publishers), 'each worker published it once at most');
    my ($v, $a, $err) = count_frames($url, 3);
    cmp_ok($v, '>=', 40, 'FFmpeg decodes it too') or diag($err);
    stop($pub);
    return (\@players, \@publishers);
}

run_tests();

__DATA__

=== TEST 1: two workers with reuseport: 20 players spread over both all decode; one publisher, pulled once per worker
--- workers: 2
--- config
server {
    listen $TEST_NGINX_RTMP_PORT reuseport;
    application live { live on; }
}
--- run
my ($players, $publishers) = players_everywhere(2);
is(scalar(@$players), 2, 'the players were on both workers');
is(scalar(@$publishers), 2, 'the stream was published in both workers (the client in one, a link in the other)');
--- no_error_log
[error]
worker link:



=== TEST 2: four workers without reuseport, rtmp_auto_push on: RTMP and HTTP-FLV players anywhere; a publish of the same name in another worker is refused
--- workers: 4
--- main_config
rtmp_auto_push on;
rtmp_auto_push_reconnect 200ms;
rtmp_socket_dir /tmp/;
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- http_config
server {
    listen $TEST_NGINX_HTTP_PORT;
    location /flv { flv_live on; }
}
--- run
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/src", loop => 1, timeout => 60);
ok(wait_published('src'), 'publishing') or diag(publisher_log($pub));
my $r = bench("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/src", 20, 4);
is($r->{players_with_frames}, 20, '20 RTMP players all get frames') or diag(explain($r));
my $ok = 0;
for (1 .. 8) {
    my $f = flv_play("http://127.0.0.1:$TEST_NGINX_HTTP_PORT/flv/live/src.flv", 2);
    $ok++ if ($f->{status} // 0) == 200 && ($f->{video} // 0) > 10;
}
is($ok, 8, '8 HTTP-FLV players in a row all get video, whichever worker takes them');
my @workers = grep { /\d/ } split /\s+/, `ps --ppid @{[master_pid()]} -o pid=`;
my @socks = map { glob("/tmp/ngx-rtmp-rs.$_.*.sock") } @workers;
is(scalar(@socks), 4, 'one link socket per worker in rtmp_socket_dir');
my @dups;
for (1 .. 6) {
    my $p = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/src", timeout => 10);
    push @dups, $p;
}
ok(wait_until(sub { count_lines(qr/already publishing/) >= 6 }, 15), 'six more publishers of the name are all refused, whichever worker they reach');
stop($_) for @dups;
ok(kill(0, $pub), 'the first publisher goes on');
stop($pub);
--- no_error_log
[error]



=== TEST 3: a player waiting in one worker gets a stream published later in another; the link closes with the last player
--- workers: 2
--- config
server {
    listen $TEST_NGINX_RTMP_PORT reuseport;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/late";
my @waiting = map { in_background(sub { my @r = count_frames($url, 8); $r[0] }) } 1 .. 6;
ok(wait_playing('late', 6), 'six players wait for the stream');
sleep 1;
my $pub = publish($url, loop => 1, timeout => 60);
ok(wait_published('late'), 'publishing') or diag(publisher_log($pub));
my $got = 0;
for (@waiting) { my ($v) = result_of($_, 40); $got++ if ($v // 0) >= 40 }
is($got, 6, 'every waiting player decodes it, on both workers');
is(scalar(pids_of(qr/rtmp: live: play "late"/)), 2, 'the players were on both workers');
stop($pub);
ok(wait_log(qr/rtmp: live: unpublish "late"/, 2), 'the stream ends in both workers');
--- no_error_log
[error]



=== TEST 4: reload during playback: the old worker keeps its publisher and players; players of the new workers pull from it
--- workers: 2
--- reloads
--- config
server {
    listen $TEST_NGINX_RTMP_PORT reuseport;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/rl";
my $pub = publish($url, loop => 1, timeout => 90);
ok(wait_published('rl'), 'publishing') or diag(publisher_log($pub));
my $old_player = in_background(sub { my @r = count_frames($url, 10); $r[0] });
ok(wait_playing('rl'), 'a player plays');
sleep 1;
my $master = master_pid();
ok(kill('HUP', $master), 'reload');
ok(wait_log(qr/reconfiguring/, 1, 10), 'nginx reconfigures');
sleep 2;
my $r = bench($url, 10, 4);
is($r->{players_with_frames}, 10, '10 new players after the reload all get frames') or diag(explain($r));
my ($v) = result_of($old_player, 40);
cmp_ok($v // 0, '>=', 150, 'the player across the reload got its 10 s') ;
ok(kill(0, $pub), 'the publisher was never dropped');
stop($pub);
--- no_error_log
[error]



=== TEST 5: stat pages show a stream fed from another worker once: its real publisher and every player, no links
--- workers: 2
--- config
server {
    listen $TEST_NGINX_RTMP_PORT reuseport;
    application live { live on; }
}
--- http_config
server {
    listen $TEST_NGINX_HTTP_PORT;
    location /stat { rtmp_stat all; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/src";
my $pub = publish($url, loop => 1, timeout => 60);
ok(wait_published('src'), 'publishing') or diag(publisher_log($pub));
my @players = map { in_background(sub { my @r = count_frames($url, 7); $r[0] }) } 1 .. 8;
ok(wait_playing('src', 8), 'eight players');
my $xml = '';
ok(wait_until(sub {
    $xml = `curl -s http://127.0.0.1:$TEST_NGINX_HTTP_PORT/stat`;
    my $n = () = $xml =~ /<client>/g;
    $n == 9;
}, 10), 'the stat page lists 9 clients (1 publisher, 8 players)') or diag($xml);
my $streams = () = $xml =~ /<stream>/g;
is($streams, 1, 'one stream');
my $publishing = () = $xml =~ /<publishing\/>\s*<active\/>\s*<\/client>/g;
is($publishing, 1, 'one publishing client');
unlike($xml, qr/worker link|another worker|unix:/, 'no link session shown');
is(scalar(pids_of(qr/rtmp: live: play "src"/)), 2, 'the players were on both workers');
my $ok = grep { (result_of($_, 30))[0] >= 80 } @players;
is($ok, 8, 'all of them decoded');
stop($pub);
--- no_error_log
[error]



=== TEST 6: the publisher's worker crashes: the name is free at once in every worker, players of the other worker get the stream back when it is published again
--- workers: 2
--- kills_worker
--- config
server {
    listen $TEST_NGINX_RTMP_PORT reuseport;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/cr";
my $pub = publish($url, loop => 1, timeout => 60);
ok(wait_published('cr'), 'publishing') or diag(publisher_log($pub));
my ($line) = log_lines(qr/rtmp: live: publish "cr"/);
my ($owner) = $line =~ /\[info\] (\d+)#/;
ok($owner, "the publisher is on worker $owner");
# Players until one is on the other worker (reuseport hashes by source port).
my ($survivor, $n) = (undef, 0);
my $out = "$TEST_NGINX_PREFIX/survivor.flv";
for my $try (1 .. 20) {
    my $f = "$TEST_NGINX_PREFIX/p$try.flv";
    my $pid = fork() // die;
    if (!$pid) { exec('timeout', '40', rtmp_cli(), 'play', $url, '--duration', '20', '--idle-timeout', '15', '--out', $f) or exit 127 }
    $Test::Nginx::Rtmp::BG{$pid} = "player $try";
    # (Links between workers log plays and publishes too, without a client address.)
    ok(wait_log(qr/rtmp: live: play "cr", client: 127/, $try), "player $try plays");
    my @plays = log_lines(qr/rtmp: live: play "cr", client: 127/);
    my ($wpid) = $plays[-1] =~ /\[info\] (\d+)#/;
    if ($wpid != $owner) { ($survivor, $out) = ($pid, $f); last }
    kill 'TERM', $pid;
}
ok($survivor, 'a player on the other worker');
sleep 1;
ok(kill('KILL', $owner), 'the publisher\'s worker is killed');
ok(wait_until(sub { defined wait_publisher($pub, 0) }, 10), 'the publisher lost its connection');
ok(wait_until(sub { my @w = grep { /\d/ } split /\s+/, `ps --ppid @{[master_pid()]} -o pid=`; @w == 2 && !grep { $_ == $owner } @w }, 10),
    'nginx started a new worker');
ok(wait_until(sub { !glob("/tmp/ngx-rtmp-rs.$owner.*.sock") }, 5), 'the dead worker\'s link socket was removed by its successor');
$pub = publish($url, loop => 1, timeout => 60);
ok(wait_log(qr/rtmp: live: publish "cr" \(live\), client: 127/, 2), 'the same name publishes again at once (the dead worker\'s entry is ignored)') or diag(publisher_log($pub));
my $r = bench($url, 10, 3);
is($r->{players_with_frames}, 10, 'new players get it from either worker') or diag(explain($r));
ok(defined wait_publisher($survivor, 30), 'the surviving player finished');
my @tags = grep { $_->[0] == 9 } flv_tags($out);
cmp_ok(scalar(@tags), '>=', 200, 'the player of the other worker got video before and after the crash');
stop($pub);
--- no_error_log
[error]



=== TEST 7: four workers with reuseport: 20 players all decode, one pull per other worker that has players
--- workers: 4
--- config
server {
    listen $TEST_NGINX_RTMP_PORT reuseport;
    application live { live on; }
}
--- run
my ($players) = players_everywhere(4);
cmp_ok(scalar(@$players), '>=', 2, 'the players were on several workers (' . scalar(@$players) . ')');
--- no_error_log
[error]
worker link:



=== TEST 8: two workers sharing one listening socket (no reuseport, no rtmp_auto_push): 20 players all decode wherever nginx puts them
--- workers: 2
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
players_everywhere(1);
--- no_error_log
[error]
worker link:



=== TEST 9: a reload that adds a server{} before the one with the stream: new workers still find it in the old worker (servers are told by their listen addresses, not their place), and the new server's stream of the same name is another stream
--- reloads
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/src";
my $pub = publish($url, loop => 1, timeout => 90);
ok(wait_published('src'), 'publishing') or diag(publisher_log($pub));
my $conf_file = "$TEST_NGINX_PREFIX/conf/nginx.conf";
my $conf = Test::Nginx::Rtmp::slurp($conf_file);
ok($conf =~ s/^rtmp \{\n/rtmp {\nserver {\n    listen $TEST_NGINX_RTMP_PORT2;\n    application live { live on; }\n}\n/m,
   'a server{} goes first in the configuration');
open my $fh, '>', $conf_file or die "$conf_file: $!";
print $fh $conf;
close $fh;
ok(kill('HUP', master_pid()), 'reload');
ok(wait_log(qr/reconfiguring/, 1, 10), 'nginx reconfigures');
ok(wait_until(sub { my $s = Test::Nginx::Rtmp::rtmp_connect_raw($TEST_NGINX_RTMP_PORT2); close $s if $s; $s }, 10),
   'the new server listens');
sleep 1;
my ($v) = count_frames($url, 3);
cmp_ok($v // 0, '>=', 40, "a player of the new worker gets the stream from the old one ($v frames)");
my ($w) = count_frames("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT2/live/src", 3);
is($w // 0, 0, 'the same name in the other server is not that stream');
ok(kill(0, $pub), 'the publisher was never dropped');
stop($pub);
--- no_error_log
[error]
