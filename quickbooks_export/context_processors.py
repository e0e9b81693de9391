def quickbooks_connection(request):
    return {}
