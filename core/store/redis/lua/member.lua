-- A cache holder (gateway process) renews its membership: ARGV[2] is its id, held until
-- Redis's clock passes now + ARGV[3] ms.
redis.call('HSET', ARGV[1] .. ':members', ARGV[2], now_ms() + tonumber(ARGV[3]))
return 1
