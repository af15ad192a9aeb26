package Test::Nginx::HttpRecorder;
# A small HTTP server for notify tests: it records every request as one JSON line and answers
# according to the path:
#   /ok              200            /deny        403             /empty    closes without a reply
#   /redirect/NAME   302 -> NAME    /garbage     not HTTP        /chunked  200, chunked body
#   /hang            never answers  /slow/MS     200 after MS ms /nolocation 302 without Location
# Each connection is served by its own child, so a hanging request blocks nobody else.
use strict;
use warnings;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Time::HiRes ();

# Test::Nginx::HttpRecorder->new($file, $port): listens on 127.0.0.1:$port (e.g. the block's
# $TEST_NGINX_HTTP_PORT, so that the nginx config can name it), records into $file.
sub new {
    my ($class, $file, $port) = @_;
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port // 0, Listen => 64, ReuseAddr => 1)
        or die "recorder: listen: $!";
    unlink $file;
    my $bound = $srv->sockport;
    my $pid = fork() // die "fork: $!";
    if (!$pid) {
        $SIG{CHLD} = 'IGNORE';
        while (my $c = $srv->accept) {
            my $k = fork();
            if (defined $k && !$k) { serve($c, $file); POSIX::_exit(0) }
            close $c;
        }
        POSIX::_exit(0);
    }
    close $srv;
    return bless { port => $bound, pid => $pid, file => $file, owner => $$ }, $class;
}

sub port { $_[0]{port} }
sub url { "http://127.0.0.1:$_[0]{port}$_[1]" }

sub decode_form {
    my %f;
    for (split /&/, $_[0] // '') {
        my ($k, $v) = split /=/, $_, 2;
        for ($k, $v) { $_ //= ''; tr/+/ /; s/%([0-9A-Fa-f]{2})/chr hex $1/ge }
        $f{$k} = $v;
    }
    return \%f;
}

sub serve {
    my ($c, $file) = @_;
    local $/ = "\r\n";
    my $line = <$c> // return;
    my ($method, $target) = $line =~ /^(\S+) (\S+) HTTP/ or return;
    my %h;
    while (my $l = <$c>) {
        last if $l eq "\r\n";
        $h{lc $1} = $2 if $l =~ /^([^:]+):\s*(.*?)\r\n$/;
    }
    my $body = '';
    read($c, $body, $h{'content-length'}) if $h{'content-length'};
    my ($path, $query) = split /\?/, $target, 2;
    my $fields = ($h{'content-type'} // '') =~ /json/ ? eval { JSON::PP::decode_json($body) } // {}
               : decode_form($method eq 'GET' ? $query : $body);
    my $rec = JSON::PP->new->canonical->encode({ method => $method, path => $path, query => $query // '',
        ctype => $h{'content-type'} // '', body => $body, fields => $fields,
        time => Time::HiRes::time() });
    if (open my $fh, '>>', $file) { print $fh "$rec\n"; close $fh }
    my $ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    if ($path eq '/ok') { print $c $ok }
    elsif ($path eq '/deny') { print $c "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" }
    elsif ($path =~ m{^/redirect/(.+)$}) { print $c "HTTP/1.1 302 Found\r\nLocation: $1\r\nContent-Length: 0\r\n\r\n" }
    elsif ($path eq '/nolocation') { print $c "HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n" }
    elsif ($path eq '/garbage') { print $c "SSH-2.0-OpenSSH\r\n\r\n" }
    elsif ($path eq '/chunked') { print $c "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" }
    elsif ($path eq '/hang') { sleep 60 }
    elsif ($path =~ m{^/slow/(\d+)$}) { Time::HiRes::sleep($1 / 1000); print $c $ok }
    # /empty and anything else: close without a reply
    close $c;
}

# The recorded requests, oldest first (hashrefs: method path query ctype body fields time).
sub requests {
    my ($self) = @_;
    open my $fh, '<', $self->{file} or return ();
    return map { JSON::PP::decode_json($_) } grep { /\S/ } <$fh>;
}

# The recorded requests whose form field `call` is $call.
sub calls {
    my ($self, $call) = @_;
    return grep { ($_->{fields}{call} // '') eq $call } $self->requests;
}

sub stop {
    my ($self) = @_;
    return unless $$ == $self->{owner};
    kill 'KILL', $self->{pid} if $self->{pid};
    waitpid $self->{pid}, 0 if $self->{pid};
    $self->{pid} = 0;
}

sub DESTROY { $_[0]->stop }

1;
