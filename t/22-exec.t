# Exec: programs beside streams and workers (exec_push/exec_pull/exec_static, the one-shot
# exec_publish…), spawned fast with no inherited descriptors, a PATH, their own process group and
# the kill signal sent to the group; exits logged with status and last stderr line; respawn.
# Children write into $TEST_NGINX_PREFIX/out (mode 0777: workers run as an unprivileged user).
use lib 't/lib';
use Test::Nginx::Rtmp;

sub slurp { Test::Nginx::Rtmp::slurp(@_) }

# The output directory and a shell script $name there with $body; returns the script's path.
sub script {
    my ($name, $body) = @_;
    my $out = "$ENV{TEST_NGINX_PREFIX}/out";
    mkdir $out;
    chmod 0777, $out;
    my $path = "$ENV{TEST_NGINX_PREFIX}/$name";
    open my $fh, '>', $path or die "$path: $!";
    print $fh "#!/bin/sh\nOUT=$out\n$body";
    close $fh;
    chmod 0755, $path;
    return $path;
}

sub out_file { slurp("$ENV{TEST_NGINX_PREFIX}/out/$_[0]") }

# Pids of the children started by $what ("exec_push live/cam1"), in order, from the log.
sub started {
    my ($what) = @_;
    return map { /pid (\d+)/ ? $1 : () } log_lines(qr/\Q$what\E: started /);
}

sub alive { my $pid = shift; return $pid && kill(0, $pid) && slurp("/proc/$pid/stat") !~ /^\d+ \(.*\) Z/ }

# Processes whose command line contains $text.
sub procs_with {
    my ($text) = @_;
    my @p;
    for my $d (glob '/proc/[0-9]*') {
        my $cmd = slurp("$d/cmdline");
        $cmd =~ tr/\0/ /;
        push @p, $d =~ m{(\d+)$} if index($cmd, $text) >= 0 && $cmd !~ /^(?:pgrep|ps) /;
    }
    return @p;
}

run_tests();

__DATA__

=== TEST 1: an exec_push FFmpeg ladder (bare "ffmpeg", found on PATH) feeds another application; a player decodes 320x180; the child goes with the publish
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        exec_push ffmpeg -nostdin -loglevel error -i rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/$name
            -c:v libx264 -preset ultrafast -s 320x180 -r 10 -g 10 -c:a copy
            -f flv rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/out/$name;
    }
    application out { live on; }
}
--- run
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my $pub = publish("$base/live/cam1", loop => 1, timeout => 60);
ok(wait_log(qr/exec_push live\/cam1: started "ffmpeg /), 'exec_push started ffmpeg');
my ($pid) = started('exec_push live/cam1');
ok(wait_published('cam1', 2, 20), 'the ladder publishes out/cam1') or diag(publisher_log($pub));
my $p = ffprobe_play("$base/out/cam1", 15);
is("$p->{width}x$p->{height}", '320x180', 'a player of out/cam1 decodes 320x180') or diag($p->{stderr});
is($p->{video}, 'h264', 'H.264');
ok(alive($pid), "the ffmpeg child ($pid) runs while the stream is published");
stop($pub);
ok(wait_until(sub { !alive($pid) }, 5, 0.1), 'the child is gone after unpublish');
ok(wait_log(qr/exec_push live\/cam1: "ffmpeg" \(pid $pid\) killed by signal 9 \(KILL\)/, 1, 5),
   'its end is logged with the signal');
is(scalar(started('exec_push live/cam1')), 1, 'not respawned after the publish ended');
--- no_error_log
cannot run



=== TEST 2: respawn after kill -9 within respawn_timeout; a command that dies at once backs off instead of spinning; exit code and last stderr line logged
--- config
respawn_timeout 1s;
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        exec_push sleep 1000;
        exec_push sh -c 'echo "starting $name" >&2; echo "dying $name" >&2; exit 7';
    }
    application norespawn {
        live on;
        respawn off;
        exec_push sleep 1001;
    }
}
--- run
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my $pub = publish("$base/live/cam2", loop => 1, timeout => 60);
ok(wait_log(qr/exec_push live\/cam2: started "sleep 1000"/), 'sleep started');
my ($first) = map { /pid (\d+)/ ? $1 : () } log_lines(qr/started "sleep 1000"/);
kill 'KILL', $first;
my $t0 = time;
ok(wait_log(qr/started "sleep 1000"/, 2, 3), 'a new child within respawn_timeout + 2 s');
my @pids = map { /pid (\d+)/ ? $1 : () } log_lines(qr/started "sleep 1000"/);
isnt($pids[1], $first, "a new pid ($pids[1])");
ok(alive($pids[1]), 'it runs');
ok(scalar(log_lines(qr/"sleep" \(pid $first\) killed by signal 9 \(KILL\); respawning in \d+ ms/)), 'the kill is logged');
# The failing command: started at once, then after 1 s, 2 s, 4 s… (never every poll).
sleep 4;
my @fails = log_lines(qr/exec_push live\/cam2: started "sh -c/);
cmp_ok(scalar(@fails), '>=', 2, 'the failing command is respawned');
cmp_ok(scalar(@fails), '<=', 4, 'but with a growing delay: ' . scalar(@fails) . ' starts in about 4 s');
ok(scalar(log_lines(qr/"sh" \(pid \d+\) exited with code 7, last stderr line: "dying cam2"; respawning in \d+ ms/)),
   'exit code and last stderr line are logged');
stop($pub);
ok(wait_until(sub { !alive($pids[1]) }, 5, 0.1), 'gone after unpublish');

# respawn off: a killed child stays dead.
$pub = publish("$base/norespawn/cam3", loop => 1, timeout => 60);
ok(wait_log(qr/started "sleep 1001"/), 'started');
my ($one) = map { /pid (\d+)/ ? $1 : () } log_lines(qr/started "sleep 1001"/);
kill 'KILL', $one;
ok(wait_log(qr/"sleep" \(pid $one\) killed by signal 9 \(KILL\); not respawned \(respawn off\)/, 1, 5), 'respawn off is logged');
sleep 1.5;
is(scalar(log_lines(qr/started "sleep 1001"/)), 1, 'and not respawned');
stop($pub);
--- no_error_log
unknown process



=== TEST 3: exec_kill_signal term reaches the whole group: a shell's trap runs and its own child goes too; exec_pull runs once per stream while it has players
--- config
exec_kill_signal term;
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        exec_push /bin/sh $TEST_NGINX_PREFIX/trap.sh $name;
        exec_pull /bin/sh $TEST_NGINX_PREFIX/pull.sh $app $name;
    }
}
--- run
script('trap.sh', <<'SH');
trap 'echo "got TERM" > $OUT/trap-$1; exit 0' TERM
sleep 1000 &
echo $! > $OUT/grandchild-$1
wait
SH
script('pull.sh', <<'SH');
echo "$1 $2" >> $OUT/pull
exec sleep 1002
SH
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my $pub = publish("$base/live/cam4", loop => 1, timeout => 60);
ok(wait_until(sub { out_file('grandchild-cam4') =~ /\d/ }, 10, 0.1), 'the script started its own child');
my ($gc) = out_file('grandchild-cam4') =~ /(\d+)/;
ok(alive($gc), "grandchild $gc runs");
stop($pub);
ok(wait_until(sub { out_file('trap-cam4') =~ /got TERM/ }, 5, 0.1), "the script's TERM trap ran");
ok(wait_until(sub { !alive($gc) }, 5, 0.1), 'its own child got the signal too');

$pub = publish("$base/live/cam5", loop => 1, timeout => 60);
ok(wait_published('cam5'), 'published');
my @players = map { in_background(sub { count_frames("$base/live/cam5", 4) }) } 1 .. 2;
ok(wait_log(qr/exec_pull live\/cam5: started/, 1, 10), 'exec_pull started with the players');
sleep 1;
is(scalar(log_lines(qr/exec_pull live\/cam5: started/)), 1, 'once for two players');
is(out_file('pull'), "live cam5\n", 'with $app and $name');
my ($pp) = started('exec_pull live/cam5');
result_of($_) for @players;
ok(wait_until(sub { !alive($pp) }, 5, 0.1), 'gone when the last player left');
stop($pub);



=== TEST 4: exec_publish / exec_publish_done / exec_play / exec_play_done get the variables, PATH is set, name= filters (every value), no nginx descriptor is inherited
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        exec_publish /bin/sh $TEST_NGINX_PREFIX/args.sh publish-$name $name $app $addr $flashver $tcurl ${name}_x $args \$name;
        exec_publish_done /bin/sh $TEST_NGINX_PREFIX/args.sh done-$name $name $app;
        exec_options on;
        exec_publish /bin/sh $TEST_NGINX_PREFIX/args.sh only-$name name=other name=cam6;
        exec_publish /bin/sh $TEST_NGINX_PREFIX/args.sh never-$name name=other;
        exec_play /bin/sh $TEST_NGINX_PREFIX/args.sh play-$name $name $args;
        exec_play_done /bin/sh $TEST_NGINX_PREFIX/args.sh play_done-$name $name;
    }
}
--- run
script('args.sh', <<'SH');
f=$OUT/$1; shift
printf '%s\n' "$@" > $f.tmp
echo "PATH=$PATH" >> $f.tmp
ls -l /proc/$$/fd/ | grep -c -e socket: -e '\.log' >> $f.tmp
mv $f.tmp $f
SH
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my $pub = publish("$base/live/cam6?k=v&x=1", loop => 1, timeout => 60);
ok(wait_until(sub { out_file('publish-cam6') ne '' }, 10, 0.1), 'exec_publish ran');
my @a = split /\n/, out_file('publish-cam6');
is($a[0], 'cam6', '$name');
is($a[1], 'live', '$app');
is($a[2], '127.0.0.1', '$addr');
like($a[3], qr/^FMLE\/3\.0/, '$flashver');
is($a[4], "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live", '$tcurl');
is($a[5], 'cam6_x', '${name}');
is($a[6], 'k=v&x=1', '$args');
is($a[7], '$name', 'escaped \$');
is($a[8], 'PATH=/usr/local/bin:/usr/bin:/bin', 'a standard PATH');
is($a[9], '0', 'no socket or log file descriptor inherited');
ok(wait_until(sub { out_file('only-cam6') ne '' }, 5, 0.1), 'name= filter: the second value matches');
my ($v) = count_frames("$base/live/cam6?p=1", 2);
ok($v > 0, 'a player plays');
is(join(' ', (split /\n/, out_file('play-cam6'))[0, 1]), 'cam6 p=1', 'exec_play ran with $name and $args');
ok(wait_until(sub { out_file('play_done-cam6') ne '' }, 5, 0.1), 'exec_play_done ran');
stop($pub);
ok(wait_until(sub { out_file('done-cam6') ne '' }, 10, 0.1), 'exec_publish_done ran');
is(join(' ', (split /\n/, out_file('done-cam6'))[0, 1]), 'cam6 live', 'with the variables');
ok(!-e "$TEST_NGINX_PREFIX/out/never-cam6", 'a line for other names does not run');



=== TEST 5: exec_static: one instance with two workers, one after a reload (the old worker 0 stops its own)
--- workers: 2
--- reloads
--- config
exec_static /bin/sh -c 'while :; do sleep 1; done' static-$TEST_NGINX_PREFIX;
server {
    # reuseport: clients spread over both workers, so one can hold worker 0.
    listen $TEST_NGINX_RTMP_PORT reuseport;
    application live { live on; }
}
--- run
my $tag = "static-$TEST_NGINX_PREFIX";
ok(wait_until(sub { procs_with($tag) == 1 }, 10, 0.1), 'one exec_static instance');
sleep 1;
my @first = procs_with($tag);
is(scalar(@first), 1, 'still one with two workers') or diag("@first");
# A client of the old worker 0 keeps it running (shutting down) after the reload.
my $w0 = (split ' ', (slurp("/proc/$first[0]/stat") =~ s/^.*\)//sr))[1];
my @socks;
for (1 .. 16) {
    my $s = rtmp_raw_connect($TEST_NGINX_RTMP_PORT, 'live') or next;
    push @socks, $s;
    last if grep { /\] $w0#/ } log_lines(qr/rtmp: connect app=/);
}
ok((grep { /\] $w0#/ } log_lines(qr/rtmp: connect app=/)), "a client holds worker 0 ($w0)");
ok(kill('HUP', master_pid()), 'reload');
ok(wait_until(sub { my @p = procs_with($tag); @p == 1 && $p[0] != $first[0] }, 10, 0.1),
   'after the reload: one instance, started by the new worker 0');
ok(kill(0, $w0), 'while the old worker 0 still serves its client');
sleep 1.5;
is(scalar(procs_with($tag)), 1, 'and only one');
close $_ for @socks;



=== TEST 6: after "nginx -s quit" of the previous test no exec_static instance is left; spawning takes milliseconds whatever the descriptor limit (1,000,000 when the suite runs under ulimit -n 1000000)
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        exec_publish /bin/sh $TEST_NGINX_PREFIX/fds.sh a;
        exec_publish /bin/sh $TEST_NGINX_PREFIX/fds.sh b;
        exec_publish /bin/sh $TEST_NGINX_PREFIX/fds.sh c;
        exec_push sleep 1003;
    }
}
--- run
(my $prev = $TEST_NGINX_PREFIX) =~ s{/(\d+)$}{'/' . ($1 - 1)}e;
SKIP: {
    skip 'the previous test did not run', 1 unless -d "$prev/conf";
    is(scalar(procs_with("static-$prev")), 0, 'no exec_static instance survives nginx -s quit');
}
script('fds.sh', <<'SH');
ulimit -n > $OUT/limit-$1
SH
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my $pub = publish("$base/live/cam7", loop => 1, timeout => 60);
ok(wait_until(sub { out_file('limit-c') ne '' }, 10, 0.1), 'the commands ran');
my ($limit) = out_file('limit-a') =~ /(\d+)/;
$limit //= 0;
my @ms = map { /spawned in ([\d.]+) ms/ ? $1 : () } log_lines(qr/exec_(publish|push) live\/cam7: started/);
is(scalar(@ms), 4, 'four spawns logged');
ok(!(grep { $_ > 50 } @ms), "each spawn took under 50 ms with $limit descriptors allowed: @ms ms");
SKIP: {
    skip "the descriptor limit is $limit here: run the suite under ulimit -n 1000000 (needs CAP_SYS_RESOURCE)", 1
        if $limit < 1000000;
    pass('spawned fast with a 1,000,000-descriptor limit');
}
stop($pub);
