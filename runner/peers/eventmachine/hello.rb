# The EventMachine peer of `shootout run --peers eventmachine`: a Ruby HTTP/1.1 responder on
# EventMachine (Debian's ruby-eventmachine) answering GET / with the 13-byte "Hello, World!"
# from memory, keep-alive on, no logging.
#
# What it stands for: a reactor under an interpreter lock. EventMachine's reactor is C++
# (epoll, its own buffers and accept loop); each readable socket becomes a call into Ruby
# (receive_data), and only the thread holding Ruby's global VM lock runs Ruby: one core of
# Ruby at most, however many connections.
#
# It parses just enough HTTP: a request is everything up to "\r\n\r\n" (plus a Content-Length
# body, skipped); every complete request in the buffer is answered, in order (pipelining), in
# one write; "Connection: close" (or HTTP/1.0 without keep-alive) closes after the answer.
#
# Started by the runner (runner/peers/langs.cpp) as
#   ruby hello.rb --port PORT
# listening on 127.0.0.1:PORT in the foreground until SIGTERM or SIGINT, then exiting 0.
require 'eventmachine'
require 'socket'

port = nil
args = ARGV.dup
until args.empty?
  arg = args.shift
  case arg
  when '--port' then port = Integer(args.shift, exception: false)
  else abort "hello.rb: unknown argument #{arg}\nusage: ruby hello.rb --port PORT"
  end
end
abort 'usage: ruby hello.rb --port PORT' unless port&.between?(1, 65_535)

# The soft descriptor limit up to the hard one, so 10,000 connections fit.
_soft, hard = Process.getrlimit(:NOFILE)
Process.setrlimit(:NOFILE, hard, hard)
EM.set_descriptor_table_size(hard)

# One connection's requests and answers.
class Hello < EM::Connection
  OK = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n" \
       'Hello, World!'.freeze
  NOT_FOUND = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\n" \
              'Not Found'.freeze
  TOO_LARGE = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n" \
              "Connection: close\r\n\r\n".freeze
  MAX_HEAD = 64 * 1024
  END_OF_HEAD = "\r\n\r\n".freeze

  def post_init
    @buf = String.new(capacity: 512, encoding: Encoding::BINARY)
    @skip = 0 # body bytes of the last request still to drop
  end

  def receive_data(data)
    @buf << data
    out = nil
    close = false
    loop do
      if @skip.positive?
        dropped = [@skip, @buf.bytesize].min
        @buf.slice!(0, dropped)
        @skip -= dropped
        break if @skip.positive?
      end
      at = @buf.index(END_OF_HEAD)
      break unless at

      head = @buf.slice!(0, at + 4)
      reply, close, @skip = answer(head)
      (out ||= +'') << reply
      break if close
    end
    if !close && @buf.bytesize > MAX_HEAD
      (out ||= +'') << TOO_LARGE
      close = true
    end
    send_data(out) if out
    close_connection_after_writing if close
  end

  private

  # [response, close?, body bytes to skip] for one request head.
  def answer(head)
    line_end = head.index("\r\n")
    method, target, version = head[0, line_end].split(' ', 3)
    headers = head[line_end + 2..]
    connection = headers[/^connection:[ \t]*([^\r]*)/i, 1]&.downcase
    close = if version == 'HTTP/1.0'
              connection != 'keep-alive'
            else
              connection == 'close'
            end
    length = headers[/^content-length:[ \t]*(\d+)/i, 1].to_i
    reply = method == 'GET' && target == '/' ? OK : NOT_FOUND
    reply = reply.sub("\r\n\r\n", "\r\nConnection: keep-alive\r\n\r\n") if version == 'HTTP/1.0' && !close
    [reply, close, length]
  end
end

# The same backlog as the generated nginx and Apache configurations (EventMachine's own
# start_server listens with a backlog of 100); the reactor takes the listening socket over.
listener = Socket.new(:INET, :STREAM)
listener.setsockopt(:SOCKET, :REUSEADDR, true)
listener.bind(Addrinfo.tcp('127.0.0.1', port))
listener.listen(4096)

EM.run do
  # Exit at once, as the other peers do: the reactor stops with its connections open.
  %w[TERM INT].each { |sig| Signal.trap(sig) { EM.stop } }
  EM.attach_server(listener, Hello)
end
exit 0
