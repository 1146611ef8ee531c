from deconv.cache import ResilientRedisCache
def test_probe():
    print("PROBE", ResilientRedisCache._logged_at, ResilientRedisCache._down_until)
