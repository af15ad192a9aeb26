# publish_takeover: a new publish of a busy name replaces the old publisher; players keep playing.
use lib 't/lib';
use Test::Nginx::Rtmp;

run_tests();

__DATA__

=== TEST 1: with publish_takeover on, the second publisher wins and players keep playing
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; publish_takeover on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/t";
my $first = publish($url, loop => 1);
ok(wait_published('t'), 'the first publisher publishes') or diag(publisher_log($first));
my $h = in_background(sub { count_frames($url, 7) });
ok(wait_playing('t'), 'the player plays');
sleep 2;    # frames of the first publisher
my $second = publish($url, loop => 1);
ok(defined wait_publisher($first, 10), 'the first publisher was disconnected');
my ($v, $a, $err) = result_of($h, 40);
cmp_ok($v // 0, '>=', 120, 'the player got frames from both publishers') or diag($err);
is(wait_publisher($second, 0), undef, 'the second publisher still runs') or diag(publisher_log($second));
--- error_log
takes over from connection



=== TEST 2: without it (the default) the second publisher gets BadName
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/t";
my $first = publish($url, loop => 1);
ok(wait_published('t'), 'the first publisher publishes') or diag(publisher_log($first));
my $second = publish($url, loop => 1);
ok(defined wait_publisher($second, 10), 'the second publisher is refused');
is(wait_publisher($first, 0), undef, 'the first keeps publishing');
--- error_log
already publishing
